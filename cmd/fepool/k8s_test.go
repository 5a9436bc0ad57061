package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
)

// The Kubernetes Indexed Job in configs/k8s runs real fepool command lines: they must parse
// with this fepool's flags, and the shard count must match the Job's completions.
func TestKubernetesJobManifest(t *testing.T) {
	b, err := os.ReadFile("../../configs/k8s/fepool-load-job.yaml")
	if err != nil {
		t.Fatal(err)
	}
	type container struct {
		Args []string
		Env  []struct{ Name, Value string }
	}
	type podSpec struct {
		HostNetwork   bool   `yaml:"hostNetwork"`
		RestartPolicy string `yaml:"restartPolicy"`
		Containers    []container
	}
	type doc struct {
		Kind string
		Spec struct {
			HostNetwork    bool `yaml:"hostNetwork"`
			Containers     []container
			CompletionMode string `yaml:"completionMode"`
			Completions    int
			Parallelism    int
			Template       struct{ Spec podSpec }
		}
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	kinds := map[string]doc{}
	for {
		var d doc
		if err := dec.Decode(&d); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		kinds[d.Kind] = d
	}
	job, pod := kinds["Job"], kinds["Pod"]
	if job.Spec.CompletionMode != "Indexed" || job.Spec.Completions < 2 || job.Spec.Parallelism != job.Spec.Completions {
		t.Fatalf("job spec: %+v", job.Spec)
	}
	if job.Spec.Template.Spec.RestartPolicy != "Never" {
		t.Error("a restarted shard would start late and measure another run")
	}
	if !job.Spec.Template.Spec.HostNetwork || !pod.Spec.HostNetwork {
		t.Error("the shards and the emulator must share the node's loopback (hostNetwork)")
	}
	check := func(c container, vars map[string]string) {
		t.Helper()
		args := make([]string, len(c.Args))
		for i, a := range c.Args {
			for k, v := range vars {
				a = strings.ReplaceAll(a, "$("+k+")", v)
			}
			args[i] = a
		}
		e := env{stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }}
		root := map[string]interface{ ParseFlags([]string) error }{"load": loadCmd(e), "serve": serveCmd(e)}
		c0, ok := root[args[0]]
		if !ok {
			t.Fatalf("unexpected command %q", args[0])
		}
		if err := c0.ParseFlags(args[1:]); err != nil {
			t.Errorf("%v: %v", args, err)
		}
		for _, a := range args {
			if v, ok := strings.CutPrefix(a, "--shard="); ok {
				_, n, err := parseShard(v)
				if err != nil || n != job.Spec.Completions {
					t.Errorf("--shard=%s with %d completions (%v)", v, job.Spec.Completions, err)
				}
			}
			if v, ok := strings.CutPrefix(a, "--scenario="); ok {
				if _, err := loadScenario(v, "", nil); err != nil {
					t.Errorf("scenario %s: %v", v, err)
				}
			}
		}
	}
	check(pod.Spec.Containers[0], nil)
	for shard := range job.Spec.Completions {
		check(job.Spec.Template.Spec.Containers[0], map[string]string{"SHARD": fmt.Sprint(shard), "START_AT": "2026-11-24T10:00:00Z", "RUN": "r"})
	}
}
