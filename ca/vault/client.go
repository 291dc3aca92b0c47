package vault

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
	"github.com/hashicorp/vault/api/auth/kubernetes"

	"github.com/sworn-id/sworn/ca"
)

// client is a Vault API client that stays logged in.
type client struct {
	cfg *Config
	api *api.Client

	// addrs are the configured nodes (none: api's address, VAULT_ADDR);
	// at indexes the one calls go to.
	addrs []string

	mu     sync.Mutex
	at     int
	secret *api.Secret // of the last login; nil for a plain token
	logins int
	// relogged is closed when a new login replaces the token.
	relogged chan struct{}
}

func newClient(cfg *Config) (*client, error) {
	vc := api.DefaultConfig()
	if vc.Error != nil {
		return nil, fmt.Errorf("vault ca: %w", vc.Error)
	}
	addrs := cfg.Addresses
	if cfg.Address != "" {
		addrs = []string{cfg.Address}
	}
	if len(addrs) > 0 {
		vc.Address = addrs[0]
	}
	// The agent has its own backoff; the client's retries would only hide
	// an outage and multiply load when Vault comes back.
	vc.MaxRetries = 0
	if cfg.CACertFile != "" {
		if err := vc.ConfigureTLS(&api.TLSConfig{CACert: cfg.CACertFile}); err != nil {
			return nil, fmt.Errorf("vault ca: ca_cert_file: %w", err)
		}
	}
	c, err := api.NewClient(vc)
	if err != nil {
		return nil, fmt.Errorf("vault ca: %w", err)
	}
	// Never pick up a token from the environment or ~/.vault-token by
	// accident: login() sets the one the config names.
	c.ClearToken()
	if cfg.Namespace != "" {
		c.SetNamespace(cfg.Namespace)
	}
	return &client{cfg: cfg, api: c, addrs: addrs, relogged: make(chan struct{})}, nil
}

// login obtains a token with the configured method.
func (c *client) login(ctx context.Context) error {
	a := c.cfg.Auth
	var secret *api.Secret
	err := c.failover(func() (err error) {
		secret, err = c.authenticate(ctx)
		return err
	})
	if err != nil {
		return fmt.Errorf("vault ca: login (%s): %w", a.Method, classifyLogin(err))
	}
	c.mu.Lock()
	c.secret = secret
	c.logins++
	close(c.relogged)
	c.relogged = make(chan struct{})
	c.mu.Unlock()
	c.cfg.Logger.Info("logged in to Vault", "method", a.Method)
	return nil
}

// authenticate logs in once, at the current address.
func (c *client) authenticate(ctx context.Context) (secret *api.Secret, err error) {
	a := c.cfg.Auth
	switch a.Method {
	case AuthToken:
		token := os.Getenv("VAULT_TOKEN")
		if a.TokenFile != "" {
			var data []byte
			data, err = os.ReadFile(a.TokenFile)
			token = strings.TrimSpace(string(data))
		}
		if err == nil && token == "" {
			err = errors.New("no token: set auth.token_file or VAULT_TOKEN")
		}
		if err == nil {
			c.api.SetToken(token)
			// A renewable token comes back as a Secret the LifetimeWatcher
			// can keep alive; a root or non-renewable one does not. Only a
			// node that cannot be reached fails the login, so that the
			// next address gets the renewal.
			var rerr error
			secret, rerr = c.api.Auth().Token().RenewSelfWithContext(ctx, 0)
			if unreachable(rerr) {
				err = rerr
			}
		}
	case AuthAppRole:
		var m *approle.AppRoleAuth
		m, err = approle.NewAppRoleAuth(a.RoleID, &approle.SecretID{FromFile: a.SecretIDFile}, approle.WithMountPath(a.Mount))
		if err == nil {
			secret, err = c.api.Auth().Login(ctx, m)
		}
	case AuthKubernetes:
		var m *kubernetes.KubernetesAuth
		m, err = kubernetes.NewKubernetesAuth(a.Role, kubernetes.WithServiceAccountTokenPath(a.JWTFile), kubernetes.WithMountPath(a.Mount))
		if err == nil {
			secret, err = c.api.Auth().Login(ctx, m)
		}
	case AuthJWT:
		secret, err = c.loginJWT(ctx)
	default:
		err = fmt.Errorf("unknown auth method %q", a.Method)
	}
	return secret, err
}

func (c *client) loginJWT(ctx context.Context) (*api.Secret, error) {
	jwt, err := os.ReadFile(c.cfg.Auth.JWTFile)
	if err != nil {
		return nil, err
	}
	secret, err := c.api.Logical().WriteWithContext(ctx, "auth/"+c.cfg.Auth.Mount+"/login", map[string]any{
		"role": c.cfg.Auth.Role,
		"jwt":  strings.TrimSpace(string(jwt)),
	})
	if err != nil {
		return nil, err
	}
	if secret == nil || secret.Auth == nil || secret.Auth.ClientToken == "" {
		return nil, errors.New("jwt login returned no token")
	}
	c.api.SetToken(secret.Auth.ClientToken)
	return secret, nil
}

// current returns the secret of the last login and a channel closed at the
// next login.
func (c *client) current() (*api.Secret, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.secret, c.relogged
}

// Logins counts successful logins.
func (c *client) Logins() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.logins
}

// do runs call; if Vault answers 403 (token expired or revoked), it logs in
// again and retries once. Only a refused fresh login, or a 403 to the
// retried call, is a refusal (ca.ErrRefused): a single 403 is the normal
// sign of an expired token.
func (c *client) do(ctx context.Context, call func(*api.Logical) (*api.Secret, error)) (*api.Secret, error) {
	var s *api.Secret
	once := func() (err error) {
		s, err = call(c.api.Logical())
		return err
	}
	err := c.failover(once)
	if statusOf(err) == http.StatusForbidden {
		if lerr := c.login(ctx); lerr != nil {
			return nil, lerr
		}
		err = c.failover(once)
	}
	if err != nil {
		return nil, classify(err)
	}
	return s, nil
}

func (c *client) read(ctx context.Context, path string) (*api.Secret, error) {
	return c.do(ctx, func(l *api.Logical) (*api.Secret, error) { return l.ReadWithContext(ctx, path) })
}

func (c *client) list(ctx context.Context, path string) (*api.Secret, error) {
	return c.do(ctx, func(l *api.Logical) (*api.Secret, error) { return l.ListWithContext(ctx, path) })
}

func (c *client) write(ctx context.Context, path string, data map[string]any) (*api.Secret, error) {
	return c.do(ctx, func(l *api.Logical) (*api.Secret, error) { return l.WriteWithContext(ctx, path, data) })
}

// failover runs call at the current address and, each time it cannot
// connect, moves on to the next configured address and runs it again,
// trying each address at most once. The address that answered stays
// current for later calls. Only a failed connection moves on: a request
// that reached a node may have been carried out, and a node's own error
// (sealed, no leader yet) is an outage for the caller's backoff.
func (c *client) failover(call func() error) error {
	for tried := 1; ; tried++ {
		c.mu.Lock()
		at := c.at
		c.mu.Unlock()
		err := call()
		if tried >= len(c.addrs) || !unreachable(err) {
			return err
		}
		c.moveOn(at, err)
	}
}

// moveOn makes the address after addrs[from] current, unless a concurrent
// call has already moved away from it.
func (c *client) moveOn(from int, cause error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at != from {
		return
	}
	c.at = (from + 1) % len(c.addrs)
	// Validate has checked every address, so SetAddress cannot fail.
	_ = c.api.SetAddress(c.addrs[c.at])
	c.cfg.Logger.Warn("cannot connect to Vault; trying the next address", "failed", c.addrs[from], "next", c.addrs[c.at], "error", cause)
}

// unreachable reports whether err is a failure to connect: the request
// never reached Vault.
func unreachable(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func statusOf(err error) int {
	var re *api.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

// classify wraps the error of a call with a valid token with the ca error
// class the caller should act on.
func classify(err error) error {
	if err == nil || classified(err) {
		return err
	}
	switch code := statusOf(err); {
	case code == 0, code == http.StatusTooManyRequests, code >= 500:
		// No answer (connection refused, timeout, TLS) or Vault sealed,
		// overloaded or in standby: try again later.
		return fmt.Errorf("%w: %w", ca.ErrUnavailable, err)
	case code == http.StatusForbidden:
		// do has already logged in afresh: the token is valid and its
		// policy does not allow the call.
		return fmt.Errorf("%w: permission denied by Vault (check the policy and auth role): %w", ca.ErrRefused, err)
	default:
		return fmt.Errorf("%w: %w", ca.ErrInvalidRequest, err)
	}
}

// classifyLogin wraps a login error. Vault answers a login it turns away
// with 400 (approle: invalid secret ID; jwt: claims do not match the role),
// 401 or 403 (kubernetes: service account not bound to the role): every
// 4xx there means the credentials or the role are wrong, and retrying the
// same ones will not help.
func classifyLogin(err error) error {
	if err == nil || classified(err) {
		return err
	}
	switch code := statusOf(err); {
	case code == 0, code == http.StatusTooManyRequests, code >= 500:
		// No answer, or a credential file not readable yet (a projected
		// token is written after the container starts): try again later.
		return fmt.Errorf("%w: %w", ca.ErrUnavailable, err)
	default:
		return fmt.Errorf("%w: Vault turned the login away (check the credentials and the auth role): %w", ca.ErrRefused, err)
	}
}

// classified reports whether err already carries a ca error class.
func classified(err error) bool {
	for _, class := range []error{ca.ErrUnavailable, ca.ErrRefused, ca.ErrInvalidRequest} {
		if errors.Is(err, class) {
			return true
		}
	}
	return false
}
