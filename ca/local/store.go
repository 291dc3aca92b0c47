package local

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
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

	"github.com/sworn-id/sworn/ca"
	"github.com/sworn-id/sworn/internal/atomicfile"
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

	found bool // the file exists; set by load
}

func (s *store) path(id string) string { return filepath.Join(s.dir, "ca-"+id+".pem") }

func (s *store) load() ([]*generation, stateFile, error) {
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
	var cas []*generation
	for _, f := range files {
		a, err := readGeneration(f)
		if err != nil {
			return nil, st, err
		}
		cas = append(cas, a)
	}
	slices.SortStableFunc(cas, func(x, y *generation) int { return x.cert.NotBefore.Compare(y.cert.NotBefore) })
	data, err := os.ReadFile(s.statePath())
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, st, fmt.Errorf("read CA state: %w", err)
	default:
		if err := json.Unmarshal(data, &st); err != nil {
			return nil, st, fmt.Errorf("%s: %w (remove the file to activate the newest CA in %s)", s.statePath(), err, s.dir)
		}
		st.found = true
	}
	return cas, st, nil
}

func (s *store) statePath() string { return filepath.Join(s.dir, stateName) }

func readGeneration(path string) (*generation, error) {
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
	return parseGeneration(path, data)
}

// parseGeneration parses the contents of the CA file at path.
func parseGeneration(path string, data []byte) (*generation, error) {
	var cert *x509.Certificate
	var err error
	var key, jwtKey crypto.Signer
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		switch block.Type {
		case "CERTIFICATE":
			if cert != nil {
				return nil, fmt.Errorf("%s: more than one CERTIFICATE block", path)
			}
			if cert, err = x509.ParseCertificate(block.Bytes); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
		case "PRIVATE KEY":
			k, err := ca.ParsePrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			dst := &key
			if block.Headers["Use"] == "jwt-svid" {
				dst = &jwtKey
			}
			if *dst != nil {
				return nil, fmt.Errorf("%s: more than one PRIVATE KEY block for the same use", path)
			}
			*dst = k
		}
	}
	if cert == nil || key == nil {
		return nil, fmt.Errorf("%s: want a CERTIFICATE and a PRIVATE KEY block", path)
	}
	if err := checkGeneration(path, cert, key, jwtKey); err != nil {
		return nil, err
	}
	a := &generation{id: hex.EncodeToString(cert.SubjectKeyId), cert: cert, key: key, jwtKey: jwtKey}
	if jwtKey != nil {
		if a.jwtKid, err = ca.KeyID(jwtKey.Public()); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	return a, nil
}

// checkGeneration refuses a CA file that would load but not work: a key that
// is not the certificate's makes every signature fail while the agent
// reports ready, and a JWT key that cannot sign ES256 fails every JWT-SVID.
func checkGeneration(path string, cert *x509.Certificate, key, jwtKey crypto.Signer) error {
	if !cert.IsCA || len(cert.URIs) != 1 || cert.KeyUsage&x509.KeyUsageCertSign == 0 || len(cert.SubjectKeyId) == 0 {
		return fmt.Errorf("%s: not a sworn CA certificate", path)
	}
	if !ca.SamePublicKey(cert.PublicKey, key.Public()) {
		return fmt.Errorf("%s: the CA private key does not match its certificate; restore the file from a backup or remove it (a new CA is then created)", path)
	}
	if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
		return fmt.Errorf("%s: the CA certificate is not self-signed by its key: %w", path, err)
	}
	if want := "ca-" + hex.EncodeToString(cert.SubjectKeyId) + ".pem"; filepath.Base(path) != want {
		return fmt.Errorf("%s: file name does not match the CA it holds (want %s)", path, want)
	}
	if jwtKey != nil {
		if k, ok := jwtKey.(*ecdsa.PrivateKey); !ok || k.Curve != elliptic.P256() {
			return fmt.Errorf("%s: the JWT-SVID key is not an EC P-256 key (ES256); remove that PRIVATE KEY block and a new JWT key is made", path)
		}
	}
	return nil
}

func (s *store) save(a *generation) error {
	if s.dir == "" {
		return nil
	}
	data, err := encodeGeneration(a)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(s.path(a.id), data, 0o600); err != nil {
		return fmt.Errorf("write CA: %w", err)
	}
	return nil
}

// encodeGeneration is the contents of a's file: its certificate, its key and
// its JWT key.
func encodeGeneration(a *generation) ([]byte, error) {
	keyDER, err := x509.MarshalPKCS8PrivateKey(a.key)
	if err != nil {
		return nil, fmt.Errorf("marshal CA key: %w", err)
	}
	jwtDER, err := x509.MarshalPKCS8PrivateKey(a.jwtKey)
	if err != nil {
		return nil, fmt.Errorf("marshal JWT key: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.cert.Raw})
	data = append(data, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...)
	data = append(data, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Headers: map[string]string{"Use": "jwt-svid"}, Bytes: jwtDER})...)
	return data, nil
}

func (s *store) saveState(st stateFile) error {
	if s.dir == "" {
		return nil
	}
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(s.statePath(), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("record CA state: %w", err)
	}
	return nil
}

func (s *store) remove(a *generation) error {
	if s.dir == "" {
		return nil
	}
	if err := os.Remove(s.path(a.id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
