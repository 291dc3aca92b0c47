package ca

import "time"

// RefreshWait is a backend's wait before its next bundle refresh, r
// uniform in [0, 1): the first from a random phase in (0, refresh], the
// next in (0.8, 1] × refresh. Agents started in the same second (a
// DaemonSet created, a node pool rebooted) then spread over the period at
// once and stay apart, so they neither read the CA together nor see a new
// CA and start re-issuing together; and none waits longer than refresh,
// which the publish-before-use rules (a new CA, a new JWT key) count on.
func RefreshWait(refresh time.Duration, r float64, first bool) time.Duration {
	if first {
		return max(time.Duration((1-r)*float64(refresh)), time.Millisecond)
	}
	return time.Duration((1 - 0.2*r) * float64(refresh))
}
