package cache

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/renameio/v2"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sworn-id/sworn/agent/registry"
	"github.com/sworn-id/sworn/ca"
)

// Persistence: with Config.Dir set, every issued SVID is kept on disk (one
// file of mode 0600 per identity, replaced by atomic rename) and removed
// when the identity is dropped. After a restart, Restore serves those with
// more than half their life left instead of asking the CA again, so rolling
// out agents does not re-sign every SVID of every node at once. The
// trade-off: SVID keys rest on the node's disk (as the CA key does for the
// embedded CA), readable by root.

const entryBlock = "SWORN SVID ENTRY"

func (c *Cache) path(key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(c.cfg.Dir, hex.EncodeToString(sum[:16])+".pem")
}

func (c *Cache) persist(s *SVID) {
	if c.cfg.Dir == "" {
		return
	}
	e := s.Entry
	data := encodeSVID(s)
	err := os.MkdirAll(c.cfg.Dir, 0o700)
	if err == nil {
		err = renameio.WriteFile(c.path(e.Key()), data, 0o600)
	}
	if err != nil {
		c.cfg.Logger.Warn("could not persist SVID; it is still served", "spiffe_id", e.ID.String(), "error", err)
	}
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
	for _, cert := range s.Chain {
		data = append(data, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})...)
	}
	return append(data, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: s.KeyDER})...)
}

func (c *Cache) unpersist(key string) {
	if c.cfg.Dir == "" {
		return
	}
	if err := os.Remove(c.path(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		c.cfg.Logger.Warn("could not remove persisted SVID", "error", err)
	}
}

// Restore loads persisted SVIDs that still have more than half their life
// left and chain to trusted, and removes the others. It returns how many
// it restored.
func (c *Cache) Restore(trusted []*x509.Certificate) int {
	if c.cfg.Dir == "" {
		return 0
	}
	files, _ := filepath.Glob(filepath.Join(c.cfg.Dir, "*.pem"))
	now := c.cfg.Clock.Now()
	n := 0
	for _, f := range files {
		s, err := readSVID(f)
		if err == nil {
			leaf := s.Chain[0]
			half := leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) / 2)
			switch {
			case !now.Before(half):
				err = errors.New("less than half its life left")
			case c.path(s.Entry.Key()) != f:
				err = errors.New("file name does not match its entry")
			default:
				err = ca.CheckX509SVID(s.Chain, s.Entry.ID, trusted, now)
			}
		}
		if err != nil {
			c.cfg.Logger.Info("not restoring persisted SVID", "file", f, "reason", err)
			_ = os.Remove(f)
			continue
		}
		it := &item{key: s.Entry.Key(), entry: s.Entry, ready: make(chan struct{}), svid: s, subs: map[*Subscription]struct{}{}, idleSince: now}
		close(it.ready)
		c.mu.Lock()
		_, exists := c.items[it.key]
		if !exists {
			c.items[it.key] = it
		}
		c.mu.Unlock()
		if !exists {
			c.sched.Track(it.key, validity(s))
			n++
		}
	}
	if n > 0 {
		c.cfg.Logger.Info("restored persisted SVIDs", "count", n)
	}
	return n
}

func readSVID(path string) (*SVID, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("mode %v lets others read the key", fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseSVID(data)
}

// parseSVID parses what encodeSVID wrote. What it accepts has an entry, a
// chain and the leaf's key; whether the chain is trusted and current is
// Restore's to check.
func parseSVID(data []byte) (*SVID, error) {
	s := &SVID{}
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
				return nil, err
			}
			ttl, err := time.ParseDuration(b.Headers["TTL"])
			if err != nil {
				return nil, err
			}
			if ttl <= 0 {
				return nil, fmt.Errorf("TTL %v is not positive", ttl)
			}
			s.Entry = registry.Entry{ID: id, TTL: ttl, Hint: b.Headers["Hint"]}
			if dns := b.Headers["DNS-Names"]; dns != "" {
				s.Entry.DNSNames = strings.Split(dns, ",")
			}
			haveEntry = true
		case "CERTIFICATE":
			cert, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, err
			}
			s.Chain = append(s.Chain, cert)
			s.ChainDER = append(s.ChainDER, b.Bytes...)
		case "PRIVATE KEY":
			signer, err := ca.ParsePrivateKey(b.Bytes)
			if err != nil {
				return nil, err
			}
			s.Key, s.KeyDER = signer, b.Bytes
		}
	}
	if !haveEntry || len(s.Chain) == 0 || s.Key == nil {
		return nil, errors.New("incomplete SVID file")
	}
	if !ca.SamePublicKey(s.Chain[0].PublicKey, s.Key.Public()) {
		return nil, errors.New("key does not match the certificate")
	}
	return s, nil
}
