package helperconf

import (
	"io/fs"
	"strconv"

	"github.com/hashicorp/hcl/hcl/ast"
	hclstrconv "github.com/hashicorp/hcl/hcl/strconv"
	"github.com/hashicorp/hcl/hcl/token"
)

// setter stores one setting's value, or says why it cannot.
type setter func(item *ast.ObjectItem) error

// fields runs each item of list through the setter for its key: an
// unknown key, or one set twice, is an error naming its line. repeatable
// keys may appear more than once (jwt_svids blocks).
func (d *decoder) fields(list *ast.ObjectList, where string, set map[string]setter, repeatable map[string]bool) error {
	seen := map[string]int{}
	for _, item := range list.Items {
		key, err := d.keyName(item)
		if err != nil {
			return err
		}
		f, ok := set[key]
		if !ok {
			return d.errorf(item.Pos(), "unknown key %q%s", key, where)
		}
		if line, dup := seen[key]; dup && !repeatable[key] {
			return d.errorf(item.Pos(), "%q set twice%s (first on line %d)", key, where, line)
		}
		seen[key] = item.Pos().Line
		if err := f(item); err != nil {
			return err
		}
	}
	return nil
}

func (d *decoder) top(c *Config, list *ast.ObjectList) error {
	return d.fields(list, "", map[string]setter{
		"agent_address":               d.str(&c.AgentAddress),
		"cmd":                         d.str(&c.Cmd),
		"cmd_args":                    d.str(&c.CmdArgs),
		"pid_file_name":               d.str(&c.PIDFileName),
		"cert_dir":                    d.str(&c.CertDir),
		"renew_signal":                d.str(&c.RenewSignal),
		"hint":                        d.str(&c.Hint),
		"svid_file_name":              d.str(&c.SVIDFileName),
		"svid_key_file_name":          d.str(&c.SVIDKeyFileName),
		"svid_bundle_file_name":       d.str(&c.SVIDBundleFileName),
		"jwt_bundle_file_name":        d.str(&c.JWTBundleFileName),
		"daemon_mode":                 d.optBool(&c.DaemonMode),
		"add_intermediates_to_bundle": d.boolean(&c.AddIntermediatesToBundle),
		"include_federated_domains":   d.boolean(&c.IncludeFederatedDomains),
		"cert_file_mode":              d.mode(&c.CertFileMode),
		"key_file_mode":               d.mode(&c.KeyFileMode),
		"jwt_svid_file_mode":          d.mode(&c.JWTSVIDFileMode),
		"jwt_bundle_file_mode":        d.mode(&c.JWTBundleFileMode),
		"jwt_svids":                   d.jwtSVIDs(&c.JWTSVIDs),
		"health_checks":               d.health(&c.HealthChecks),
	}, map[string]bool{"jwt_svids": true})
}

// objects returns the blocks an item holds: `k { }`, `k = { }` or
// `k = [{ }, { }]`.
func (d *decoder) objects(item *ast.ObjectItem, key string) ([]*ast.ObjectList, error) {
	switch v := item.Val.(type) {
	case *ast.ObjectType:
		return []*ast.ObjectList{v.List}, nil
	case *ast.ListType:
		var out []*ast.ObjectList
		for _, n := range v.List {
			o, ok := n.(*ast.ObjectType)
			if !ok {
				return nil, d.errorf(item.Pos(), "%s: each element is a block { ... }", key)
			}
			out = append(out, o.List)
		}
		return out, nil
	}
	return nil, d.errorf(item.Pos(), "%s is a block { ... }", key)
}

func (d *decoder) jwtSVIDs(dst *[]JWTSVID) setter {
	return func(item *ast.ObjectItem) error {
		lists, err := d.objects(item, "jwt_svids")
		if err != nil {
			return err
		}
		for _, l := range lists {
			var j JWTSVID
			if err := d.fields(l, " in jwt_svids", map[string]setter{
				"jwt_audience":        d.str(&j.Audience),
				"jwt_extra_audiences": d.strs(&j.ExtraAudiences),
				"jwt_svid_file_name":  d.str(&j.FileName),
			}, nil); err != nil {
				return err
			}
			*dst = append(*dst, j)
		}
		return nil
	}
}

func (d *decoder) health(h *HealthChecks) setter {
	return func(item *ast.ObjectItem) error {
		lists, err := d.objects(item, "health_checks")
		if err != nil {
			return err
		}
		if len(lists) != 1 {
			return d.errorf(item.Pos(), "health_checks is one block")
		}
		return d.fields(lists[0], " in health_checks", map[string]setter{
			"listener_enabled": d.boolean(&h.ListenerEnabled),
			"bind_port":        d.port(&h.BindPort),
			"liveness_path":    d.str(&h.LivenessPath),
			"readiness_path":   d.str(&h.ReadinessPath),
		}, nil)
	}
}

// literal returns the item's value token if it is of type want.
func (d *decoder) literal(n ast.Node, pos token.Pos, key string, want ...token.Type) (token.Token, error) {
	lit, ok := n.(*ast.LiteralType)
	if ok {
		for _, w := range want {
			if lit.Token.Type == w {
				return lit.Token, nil
			}
		}
	}
	return token.Token{}, d.errorf(pos, "%s: want a %s", key, want[0])
}

func (d *decoder) stringValue(n ast.Node, pos token.Pos, key string) (string, error) {
	t, err := d.literal(n, pos, key, token.STRING, token.HEREDOC)
	if err != nil {
		return "", err
	}
	if t.Type == token.HEREDOC {
		return heredoc(t.Text), nil
	}
	s, err := hclstrconv.Unquote(t.Text)
	if err != nil {
		return "", d.errorf(pos, "%s: %v", key, err)
	}
	return s, nil
}

func (d *decoder) str(dst *string) setter {
	return func(item *ast.ObjectItem) error {
		s, err := d.stringValue(item.Val, item.Pos(), item.Keys[0].Token.Text)
		*dst = s
		return err
	}
}

func (d *decoder) strs(dst *[]string) setter {
	return func(item *ast.ObjectItem) error {
		key := item.Keys[0].Token.Text
		l, ok := item.Val.(*ast.ListType)
		if !ok {
			return d.errorf(item.Pos(), "%s: want a list of strings", key)
		}
		for _, n := range l.List {
			s, err := d.stringValue(n, item.Pos(), key)
			if err != nil {
				return err
			}
			*dst = append(*dst, s)
		}
		return nil
	}
}

func (d *decoder) boolValue(item *ast.ObjectItem) (bool, error) {
	t, err := d.literal(item.Val, item.Pos(), item.Keys[0].Token.Text, token.BOOL)
	return t.Text == "true", err
}

func (d *decoder) boolean(dst *bool) setter {
	return func(item *ast.ObjectItem) error {
		b, err := d.boolValue(item)
		*dst = b
		return err
	}
}

func (d *decoder) optBool(dst **bool) setter {
	return func(item *ast.ObjectItem) error {
		b, err := d.boolValue(item)
		*dst = &b
		return err
	}
}

func (d *decoder) mode(dst **fs.FileMode) setter {
	return func(item *ast.ObjectItem) error {
		key := item.Keys[0].Token.Text
		t, err := d.literal(item.Val, item.Pos(), key, token.NUMBER)
		if err != nil {
			return err
		}
		m, err := parseMode(t.Text)
		if err != nil {
			return d.errorf(item.Pos(), "%s: %v", key, err)
		}
		*dst = &m
		return nil
	}
}

func (d *decoder) port(dst *int) setter {
	return func(item *ast.ObjectItem) error {
		key := item.Keys[0].Token.Text
		t, err := d.literal(item.Val, item.Pos(), key, token.NUMBER)
		if err != nil {
			return err
		}
		n, err := strconv.ParseInt(t.Text, 10, 32)
		if err != nil || n < 1 || n > 65535 {
			return d.errorf(item.Pos(), "%s: %s is not a port (1 to 65535)", key, t.Text)
		}
		*dst = int(n)
		return nil
	}
}

// heredoc returns a <<EOF ... EOF literal's body.
func heredoc(text string) string {
	start := 0
	for i := range len(text) {
		if text[i] == '\n' {
			start = i + 1
			break
		}
	}
	body := text[start:]
	end := len(body)
	for end > 0 && body[end-1] != '\n' {
		end--
	}
	return body[:end]
}
