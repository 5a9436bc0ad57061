package topology

import (
	"strings"
	"testing"
)

// TestRevealUnknownUsers: sip.reveal_unknown_users is off unless set to true; anything but a
// YAML boolean is refused where it stands.
func TestRevealUnknownUsers(t *testing.T) {
	if Default().SIP.RevealUnknownUsers || mustParse(t, good).SIP.RevealUnknownUsers {
		t.Fatal("unknown users revealed by default")
	}
	if !mustParse(t, good+"sip:\n  reveal_unknown_users: true\n").SIP.RevealUnknownUsers {
		t.Fatal("reveal_unknown_users: true not taken")
	}
	if mustParse(t, good+"sip:\n  reveal_unknown_users: false\n").SIP.RevealUnknownUsers {
		t.Fatal("reveal_unknown_users: false taken as true")
	}
	for _, v := range []string{"yes", "1", "maybe", `"true"`, "[true]"} {
		_, err := Parse("test.yaml", []byte(good+"sip:\n  reveal_unknown_users: "+v+"\n"))
		if err == nil || !strings.Contains(err.Error(), "test.yaml:17:25: wrong type: want true or false") {
			t.Errorf("reveal_unknown_users: %s: %v, want a type error at 17:25", v, err)
		}
	}
}
