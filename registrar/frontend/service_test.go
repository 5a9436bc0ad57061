package frontend

import (
	"errors"
	"strings"
	"testing"

	"github.com/fepool/fepool/registrar/backend"
)

const soapHead = `<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"><SOAP-ENV:Body>`
const soapTail = `</SOAP-ENV:Body></SOAP-ENV:Envelope>`

func TestContactChanges(t *testing.T) {
	set, remove, err := contactChanges([]byte(soapHead +
		`<m:setContact xmlns:m="http://schemas.microsoft.com/winrtc/2002/11/sip"><m:displayName> Bob &amp; co </m:displayName><m:groups>1 2</m:groups><m:URI>sip:bob@contoso.com</m:URI></m:setContact>` +
		`<m:deleteContact xmlns:m="http://schemas.microsoft.com/winrtc/2002/11/sip"><m:URI> sip:eve@contoso.com </m:URI></m:deleteContact>` + soapTail))
	if err != nil {
		t.Fatal(err)
	}
	if len(set) != 1 || set[0] != (backend.Contact{URI: "sip:bob@contoso.com", DisplayName: "Bob & co", Groups: "1 2"}) {
		t.Errorf("set = %+v", set)
	}
	if len(remove) != 1 || remove[0] != "sip:eve@contoso.com" {
		t.Errorf("remove = %q", remove)
	}
	for name, body := range map[string]string{
		"empty":              "",
		"not xml":            "setContact bob",
		"no operation":       soapHead + soapTail,
		"no uri":             soapHead + `<m:setContact xmlns:m="x"><m:displayName>Bob</m:displayName></m:setContact>` + soapTail,
		"uri not sip":        soapHead + `<m:setContact xmlns:m="x"><m:URI>bob</m:URI></m:setContact>` + soapTail,
		"delete without uri": soapHead + `<m:deleteContact xmlns:m="x"></m:deleteContact>` + soapTail,
		"truncated":          soapHead + `<m:setContact xmlns:m="x"><m:URI>sip:bob@contoso.com</m:URI>`,
	} {
		_, _, err := contactChanges([]byte(body))
		if !errors.Is(err, errBadRequest) || !strings.Contains(err.Error(), "SERVICE") && !strings.Contains(err.Error(), "Contact") {
			t.Errorf("%s: err = %v, want a 400 reason", name, err)
		}
	}
}
