package cache

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sworn-id/sworn/agent/registry"
	"github.com/sworn-id/sworn/ca"
)

// Persistence: with Config.Dir set, every issued SVID is kept on disk (one
// file of mode 0600 per identity, replaced by atomic rename) and removed
// when the identity is dropped. After a restart, Restore serves every one
// still valid instead of asking the CA again, so rolling out agents does
// not re-sign every SVID of every node at once, and an agent restarted
// while the CA is down keeps serving; those past their renewal time are
// renewed at once. The trade-off: SVID keys rest on the node's disk (as
// the CA key does for the embedded CA), readable by root.
//
// Each file also keeps the trust anchors the CA published when the SVID
// was issued, so that an SVID can still be verified, and served with a
// bundle, when the agent's last known bundle cannot be read.

const (
	entryBlock  = "SWORN SVID ENTRY"
	anchorBlock = "SWORN TRUST ANCHOR"
)

// anchorSource is a Signer that publishes its trust anchors, as every
// ca.Authority does.
type anchorSource interface {
	Authorities() ca.Authorities
}

func (c *Cache) path(key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(c.cfg.Dir, hex.EncodeToString(sum[:16])+".pem")
}

// persist queues s to be written to its file (see writer).
func (c *Cache) persist(s *SVID) {
	if c.cfg.Dir != "" {
		c.files.put(c, s.Entry.Key(), s)
	}
}

// unpersist queues the removal of key's file.
func (c *Cache) unpersist(key string) {
	if c.cfg.Dir != "" {
		c.files.put(c, key, nil)
	}
}

// Flush waits until every write and removal queued so far is done: the
// files on disk are what the cache holds. Run calls it before returning.
func (c *Cache) Flush() { c.files.flush() }

// writer keeps the SVID files off the renewal path: renewals queue what
// to write (or remove), and one goroutine, started when there is work and
// gone when there is none, does it. Only the latest state of each file is
// kept in the queue, so a burst of renewals costs one write per identity,
// and one writer means a removal queued after a write is never undone by
// it. The price: the disk lags the cache by the queue, which is what a
// crash can lose; a lost write leaves the previous SVID file, which a
// restart serves if still valid and re-issues otherwise.
type writer struct {
	mu      sync.Mutex
	queue   []string         // keys in the order first queued
	pending map[string]*SVID // key → SVID to write; nil: remove the file
	done    chan struct{}    // closed when the goroutine stops; nil if none runs
}

func (w *writer) put(c *Cache, key string, s *SVID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.pending == nil {
		w.pending = map[string]*SVID{}
	}
	if _, queued := w.pending[key]; !queued {
		w.queue = append(w.queue, key)
	}
	w.pending[key] = s
	if w.done == nil {
		w.done = make(chan struct{})
		go w.drain(c)
	}
}

func (w *writer) drain(c *Cache) {
	for {
		w.mu.Lock()
		if len(w.queue) == 0 {
			close(w.done)
			w.done = nil
			w.queue = nil // let a large burst's backing array go
			w.mu.Unlock()
			return
		}
		key := w.queue[0]
		w.queue = w.queue[1:]
		s := w.pending[key]
		delete(w.pending, key)
		w.mu.Unlock()
		if s == nil {
			c.removeFile(key)
		} else {
			c.writeFile(s)
		}
	}
}

func (w *writer) flush() {
	w.mu.Lock()
	done := w.done
	w.mu.Unlock()
	if done != nil {
		<-done
	}
}

func (c *Cache) removeFile(key string) {
	if err := os.Remove(c.path(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		c.cfg.Logger.Warn("could not remove persisted SVID", "error", err)
	}
}

func (c *Cache) writeFile(s *SVID) {
	e := s.Entry
	data := encodeSVID(s)
	if src, ok := c.cfg.Signer.(anchorSource); ok {
		data = append(data, encodeAnchors(src.Authorities().X509)...)
	}
	err := os.MkdirAll(c.cfg.Dir, 0o700)
	if err == nil {
		err = replaceFile(c.path(e.Key()), data)
	}
	if err != nil {
		c.cfg.Logger.Warn("could not persist SVID; it is still served", "spiffe_id", e.ID.String(), "error", err)
	}
}

// replaceFile puts data at path by writing a temp file beside it (0600,
// named as renameio names its own, so the agent's start removes one a
// crash leaves behind) and renaming it over path: a reader sees the old
// file or the new one, never part of one.
//
// Unlike the CA's files it is not fsynced. An SVID file is a cache of
// something the CA can re-issue, and an fsync per issuance is what bounded
// a mass re-issue (`rotate svids --all`) to the disk's flush rate. After a
// power loss a file may be empty or hold the previous SVID; Restore drops
// one that does not parse or verify, and that identity is issued afresh.
func replaceFile(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

// encodeSVID is the contents of s's file: its entry, chain and key.
func encodeSVID(s *SVID) []byte {
	e := s.Entry
	data := pem.EncodeToMemory(&pem.Block{Type: entryBlock, Headers: map[string]string{
		"SPIFFE-ID": e.ID.String(),
		"TTL":       e.TTL.String(),
		"DNS-Names": strings.Join(e.DNSNames, ","),
		"Hint":      e.Hint,
	}})
	for rest := s.ChainDER; len(rest) > 0; {
		var cert asn1.RawValue
		var err error
		if rest, err = asn1.Unmarshal(rest, &cert); err != nil {
			break // cannot happen: ChainDER is what the CA's parsed chain encoded to
		}
		data = append(data, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.FullBytes})...)
	}
	return append(data, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: s.KeyDER})...)
}

// encodeAnchors is the trust anchor blocks of an SVID's file. Older
// agents skip blocks of a type they do not know.
func encodeAnchors(anchors []*x509.Certificate) []byte {
	var data []byte
	for _, a := range anchors {
		data = append(data, pem.EncodeToMemory(&pem.Block{Type: anchorBlock, Bytes: a.Raw})...)
	}
	return data
}

// parseAnchors returns the CA certificates of data's trust anchor blocks.
func parseAnchors(data []byte) []*x509.Certificate {
	var anchors []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return anchors
		}
		if b.Type != anchorBlock {
			continue
		}
		if cert, err := x509.ParseCertificate(b.Bytes); err == nil && cert.IsCA {
			anchors = append(anchors, cert)
		}
	}
}

// Restore serves the persisted SVIDs that are valid now and chain to
// trusted, however little life they have left (renewal is then due at
// once), and removes the files of the others. It returns how many it
// restored.
//
// With trusted empty (the agent has no bundle it trusts: the CA gave none
// and the last one is missing or unreadable) it serves instead those that
// chain to the trust anchors kept in their own file, renews them as soon
// as the CA answers, and also returns those anchors, for the agent to
// serve as the bundle. Files it cannot verify then stay on disk for a
// restart with a bundle: an unreadable bundle says nothing against them.
// Files it cannot parse, whose name does not match their entry, or that
// expired are removed either way.
func (c *Cache) Restore(trusted []*x509.Certificate) (n int, anchors []*x509.Certificate) {
	if c.cfg.Dir == "" {
		return 0, nil
	}
	files, _ := filepath.Glob(filepath.Join(c.cfg.Dir, "*.pem"))
	now := c.cfg.Clock.Now()
	unverified := len(trusted) == 0
	for _, f := range files {
		s, roots, keep, err := c.checkFile(f, trusted, now)
		switch {
		case err != nil && keep:
			c.cfg.Logger.Warn("persisted SVID kept on disk but not served", "file", f, "reason", err)
		case err != nil:
			c.cfg.Logger.Info("not restoring persisted SVID; file removed", "file", f, "reason", err)
			_ = os.Remove(f)
		case c.restore(s, now, unverified):
			n++
			if unverified {
				anchors = addAnchors(anchors, roots)
			}
		}
	}
	if n > 0 {
		c.cfg.Logger.Info("restored persisted SVIDs", "count", n, "verified_with", map[bool]string{false: "trust bundle", true: "trust anchors in their files"}[unverified])
	}
	return n, anchors
}

// checkFile reads one persisted SVID file and verifies it against trusted,
// or against the anchors in the file when trusted is empty; it returns
// what it verified against. keep says that a file that failed might still
// pass with a trusted bundle.
func (c *Cache) checkFile(f string, trusted []*x509.Certificate, now time.Time) (s *SVID, roots []*x509.Certificate, keep bool, err error) {
	s, chain, own, err := readSVID(f)
	switch {
	case err != nil:
		return nil, nil, false, err
	case c.path(s.Entry.Key()) != f:
		return nil, nil, false, errors.New("file name does not match its entry")
	case !now.Before(s.NotAfter):
		return nil, nil, false, fmt.Errorf("expired at %v", s.NotAfter)
	case len(trusted) > 0:
		return s, trusted, false, ca.CheckX509SVID(chain, s.Entry.ID, trusted, now)
	case len(own) == 0:
		return nil, nil, true, errors.New("no trusted bundle, and the file keeps no trust anchors to verify it with")
	}
	if err := ca.CheckX509SVID(chain, s.Entry.ID, own, now); err != nil {
		return nil, nil, true, fmt.Errorf("no trusted bundle, and it does not verify against the trust anchors in its file: %w", err)
	}
	return s, own, false, nil
}

// restore caches s unless its identity is cached already, and schedules its
// renewal: at once when it was not verified against a trusted bundle.
func (c *Cache) restore(s *SVID, now time.Time, renewNow bool) bool {
	it := &item{key: s.Entry.Key(), entry: s.Entry, ready: make(chan struct{}), svid: s, subs: map[*Subscription]struct{}{}, idleSince: now}
	close(it.ready)
	c.mu.Lock()
	_, exists := c.items[it.key]
	if !exists {
		c.items[it.key] = it
	}
	c.mu.Unlock()
	if exists {
		return false
	}
	c.sched.Track(it.key, validity(s))
	if renewNow {
		c.sched.Force(it.key)
	}
	return true
}

// addAnchors adds to set the certificates of more it does not hold yet.
func addAnchors(set, more []*x509.Certificate) []*x509.Certificate {
	for _, a := range more {
		if !slices.ContainsFunc(set, a.Equal) {
			set = append(set, a)
		}
	}
	return set
}

// readSVID reads a persisted SVID: it, its parsed chain, and the trust
// anchors kept with it.
func readSVID(path string) (*SVID, []*x509.Certificate, []*x509.Certificate, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, nil, nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, nil, nil, fmt.Errorf("mode %v lets others read the key", fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, nil, err
	}
	s, chain, err := parseSVID(data)
	if err != nil {
		return nil, nil, nil, err
	}
	return s, chain, parseAnchors(data), nil
}

// parseSVID parses what encodeSVID wrote, and returns the parsed chain
// beside the SVID. What it accepts has an entry, a chain and the leaf's
// key; whether the chain is trusted and current is Restore's to check.
func parseSVID(data []byte) (*SVID, []*x509.Certificate, error) {
	var entry registry.Entry
	var chain []*x509.Certificate
	var key crypto.Signer
	var keyDER []byte
	var haveEntry bool
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		switch b.Type {
		case entryBlock:
			id, err := spiffeid.FromString(b.Headers["SPIFFE-ID"])
			if err != nil {
				return nil, nil, err
			}
			ttl, err := time.ParseDuration(b.Headers["TTL"])
			if err != nil {
				return nil, nil, err
			}
			if ttl <= 0 {
				return nil, nil, fmt.Errorf("TTL %v is not positive", ttl)
			}
			entry = registry.Entry{ID: id, TTL: ttl, Hint: b.Headers["Hint"]}
			if dns := b.Headers["DNS-Names"]; dns != "" {
				entry.DNSNames = strings.Split(dns, ",")
			}
			haveEntry = true
		case "CERTIFICATE":
			cert, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, nil, err
			}
			chain = append(chain, cert)
		case "PRIVATE KEY":
			signer, err := ca.ParsePrivateKey(b.Bytes)
			if err != nil {
				return nil, nil, err
			}
			key, keyDER = signer, b.Bytes
		}
	}
	if !haveEntry || len(chain) == 0 || key == nil {
		return nil, nil, errors.New("incomplete SVID file")
	}
	if !ca.SamePublicKey(chain[0].PublicKey, key.Public()) {
		return nil, nil, errors.New("key does not match the certificate")
	}
	return newSVID(entry, chain, keyDER), chain, nil
}
