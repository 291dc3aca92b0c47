package attest

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

var (
	uuidForm = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	hex64    = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// FuzzParseCgroup feeds /proc/<pid>/cgroup contents, which a process
// shapes by the cgroups it is put in (and, nested, creates itself). A pod
// and container found must have the exact forms the API and the runtimes
// use, so that a crafted path can only ever name a well-formed UID and ID,
// never a prefix or part of one; and every hierarchy that names a pod must
// name the same one.
func FuzzParseCgroup(f *testing.F) {
	fixtures, _ := filepath.Glob(filepath.Join("testdata", "cgroup", "*"))
	for _, p := range fixtures {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("0::/kubepods/pod2c48913c-b29f-11e7-9350-020968147796/../" + "9bca8d63d5fa610783847915bcff0ecac1273e5b4bed3f6fa1b07350e0135961\n"))
	f.Add([]byte("0::/x:y:/kubepods-pod2c48913c_b29f_11e7_9350_020968147796.slice/cri-containerd-9bca8d63d5fa610783847915bcff0ecac1273e5b4bed3f6fa1b07350e0135961.scope\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pc, ok, err := parseCgroup(data)
		if err != nil || !ok {
			if pc != (podContainer{}) {
				t.Fatalf("parseCgroup returned %+v with ok=%v err=%v", pc, ok, err)
			}
			return
		}
		if !uuidForm.MatchString(pc.PodUID) {
			t.Fatalf("pod UID %q is not a UUID", pc.PodUID)
		}
		if !hex64.MatchString(pc.ContainerID) {
			t.Fatalf("container ID %q is not 64 hex digits", pc.ContainerID)
		}
	})
}
