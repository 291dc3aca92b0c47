package workload

import (
	"testing"
	"time"
)

// BenchmarkSDSPush is the server's work for one stream's push after a
// rotation, less the send: the response for "default" and "ROOTCA" to a
// stream holding the SVID every other stream of its identity holds. A
// fan-out to N streams does this N times.
func BenchmarkSDSPush(b *testing.B) {
	f := newSDSFixture(b)
	svid := f.svid(b, "/web", time.Hour)
	names := []string{"default", "ROOTCA"}
	b.ReportAllocs()
	for b.Loop() {
		f.respond(b, names, svid)
	}
}
