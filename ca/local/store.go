package local

import (
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/google/renameio/v2"

	"github.com/sworn-id/sworn/ca"
)

// store persists CAs as one PEM file each (certificate and PKCS#8 key, mode
// 0600) plus a state file naming the active and the prepared one; any other
// CA is retired. Every write is an atomic rename,
// so a crash leaves either the old or the new file, never half of one.
type store struct {
	dir string // empty: nothing is persisted
}

const stateName = "state.json"

type stateFile struct {
	Active   string `json:"active"`
	Prepared string `json:"prepared,omitempty"`
}

func (s *store) path(id string) string { return filepath.Join(s.dir, "ca-"+id+".pem") }

func (s *store) load() ([]*authority, stateFile, error) {
	var st stateFile
	if s.dir == "" {
		return nil, st, nil
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, st, fmt.Errorf("create CA directory: %w", err)
	}
	files, err := filepath.Glob(filepath.Join(s.dir, "ca-*.pem"))
	if err != nil {
		return nil, st, err
	}
	var cas []*authority
	for _, f := range files {
		a, err := readAuthority(f)
		if err != nil {
			return nil, st, err
		}
		cas = append(cas, a)
	}
	slices.SortStableFunc(cas, func(x, y *authority) int { return x.cert.NotBefore.Compare(y.cert.NotBefore) })
	data, err := os.ReadFile(filepath.Join(s.dir, stateName))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, st, fmt.Errorf("read CA state: %w", err)
	default:
		if err := json.Unmarshal(data, &st); err != nil {
			return nil, st, fmt.Errorf("%s: %w", filepath.Join(s.dir, stateName), err)
		}
	}
	return cas, st, nil
}

func readAuthority(path string) (*authority, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s: CA key file has mode %v; it must not be readable by group or others (chmod 600)", path, fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cert *x509.Certificate
	var key, jwtKey crypto.Signer
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		switch block.Type {
		case "CERTIFICATE":
			if cert, err = x509.ParseCertificate(block.Bytes); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
		case "PRIVATE KEY":
			k, err := ca.ParsePrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			if block.Headers["Use"] == "jwt-svid" {
				jwtKey = k
			} else {
				key = k
			}
		}
	}
	if cert == nil || key == nil {
		return nil, fmt.Errorf("%s: want a CERTIFICATE and a PRIVATE KEY block", path)
	}
	if !cert.IsCA || len(cert.URIs) != 1 {
		return nil, fmt.Errorf("%s: not a sworn CA certificate", path)
	}
	a := &authority{id: hex.EncodeToString(cert.SubjectKeyId), cert: cert, key: key, jwtKey: jwtKey}
	if jwtKey != nil {
		if a.jwtKid, err = ca.KeyID(jwtKey.Public()); err != nil {
			return nil, err
		}
	}
	return a, nil
}

func (s *store) save(a *authority) error {
	if s.dir == "" {
		return nil
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(a.key)
	if err != nil {
		return fmt.Errorf("marshal CA key: %w", err)
	}
	jwtDER, err := x509.MarshalPKCS8PrivateKey(a.jwtKey)
	if err != nil {
		return fmt.Errorf("marshal JWT key: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.cert.Raw})
	data = append(data, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...)
	data = append(data, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Headers: map[string]string{"Use": "jwt-svid"}, Bytes: jwtDER})...)
	if err := renameio.WriteFile(s.path(a.id), data, 0o600); err != nil {
		return fmt.Errorf("write CA: %w", err)
	}
	return nil
}

func (s *store) saveState(st stateFile) error {
	if s.dir == "" {
		return nil
	}
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := renameio.WriteFile(filepath.Join(s.dir, stateName), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("record CA state: %w", err)
	}
	return nil
}

func (s *store) remove(a *authority) error {
	if s.dir == "" {
		return nil
	}
	if err := os.Remove(s.path(a.id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
