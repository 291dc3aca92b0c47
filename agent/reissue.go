package agent

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/sworn-id/sworn/internal/atomicfile"
)

// A change of the signing CA re-issues every cached SVID. That step must
// survive a crash: the agent records in <data_dir>/signing-ca the signing
// CA under which every SVID was last re-issued, and rewrites it only once
// the re-issue is complete. At start, a record that names another CA than
// the one signing now (the CA changed while the agent was down, or a kill
// cut the re-issue short) starts the re-issue again; persisted SVIDs from
// the old CA are replaced as soon as the CA answers.

// signingRecordPath is where the record is kept.
func (a *Agent) signingRecordPath() string { return filepath.Join(a.cfg.DataDir, "signing-ca") }

// readSigningRecord returns the recorded signing CA, "" if there is none
// (a first start, or a data dir from before the record existed).
func (a *Agent) readSigningRecord() string {
	data, err := os.ReadFile(a.signingRecordPath())
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			a.log.Warn("cannot read which CA the SVIDs were last issued under; re-issuing every SVID once the CA answers", "file", a.signingRecordPath(), "error", err)
			return "unreadable"
		}
		return ""
	}
	return strings.TrimSpace(string(data))
}

// writeSigningRecord records that every SVID was re-issued under signing.
func (a *Agent) writeSigningRecord(signing string) {
	// The temp file stays in the data dir, where New removes it if a crash
	// interrupts the write.
	err := atomicfile.Write(a.signingRecordPath(), []byte(signing+"\n"), 0o600)
	if err != nil {
		a.log.Warn("cannot record the CA the SVIDs were issued under; the next start re-issues them all again", "file", a.signingRecordPath(), "error", err)
	}
}

// requestReissue asks reissueAll to re-issue every SVID under signing. A
// request not yet taken up is replaced: the latest CA is the one that
// matters. syncBundles is the only caller.
func (a *Agent) requestReissue(signing string) {
	for {
		select {
		case a.reissue <- signing:
			return
		default:
		}
		select {
		case <-a.reissue:
		default:
		}
	}
}

// reissueAll re-issues every cached SVID at each request and records the
// request's CA once all are replaced, which takes up to the
// rotation.reissue_spread window (the re-issues are paced over it, so
// agents seeing the change together do not hit the CA in one second; a
// crash meanwhile leaves the old record). With the CA down it waits (renewals
// retry with backoff); a shutdown meanwhile leaves the old record, so the
// next start carries the re-issue through.
func (a *Agent) reissueAll(ctx context.Context) {
	for {
		var signing string
		select {
		case <-ctx.Done():
			return
		case signing = <-a.reissue:
		}
		n, err := a.cache.RotateAndWait(ctx)
		if err != nil {
			a.log.Warn("stopped before every SVID was re-issued under the new signing CA; the next start finishes the job", "ca", signing, "error", err)
			return
		}
		a.writeSigningRecord(signing)
		a.log.Info("every SVID re-issued under the new signing CA", "ca", signing, "svids", n)
	}
}
