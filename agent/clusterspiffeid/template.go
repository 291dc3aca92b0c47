package clusterspiffeid

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"text/template"
	"text/template/parse"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Templates are written by whoever may write a ClusterSPIFFEID and run on
// every node's agent, so they get a subset of text/template that cannot
// spend unbounded time or memory, and data without methods:
//
//   - the data are plain maps, slices, strings and booleans built from the
//     pod's and node's metadata and spec (Go field names, as SPIRE's
//     templates use them; numbers and times as strings; no managedFields,
//     no status), so no template can call a method on a Kubernetes object
//     (ObjectMeta.Unmarshal would let it rewrite the pod it renders for);
//   - the functions are the comparisons, and, or, not, index, len and
//     slice: no print, printf, println, html, js or urlquery, which could
//     grow a variable in a loop, and no call;
//   - no define, block or template, which could recurse;
//   - range only over a field of the data, at most two deep.
var allowedFuncs = map[string]bool{
	"and": true, "or": true, "not": true, "eq": true, "ne": true, "lt": true, "le": true,
	"gt": true, "ge": true, "index": true, "len": true, "slice": true,
}

const maxRangeDepth = 2

func parseTemplate(field, text string) (*template.Template, error) {
	t, err := template.New(field).Parse(text)
	if err == nil && len(t.Templates()) > 1 {
		err = errors.New("define and block are not allowed")
	}
	if err == nil {
		err = checkNode(t.Tree.Root, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	return t, nil
}

// checkNode walks a template's parse tree and refuses what the subset
// above leaves out; depth counts the ranges n is in.
func checkNode(n parse.Node, depth int) error {
	switch n := n.(type) {
	case *parse.TextNode, *parse.CommentNode, *parse.BreakNode, *parse.ContinueNode,
		*parse.FieldNode, *parse.VariableNode, *parse.DotNode, *parse.StringNode, *parse.BoolNode,
		*parse.NilNode, *parse.NumberNode, *parse.ListNode, *parse.ActionNode, *parse.IfNode,
		*parse.WithNode, *parse.PipeNode, *parse.CommandNode, *parse.ChainNode:
	case *parse.RangeNode:
		if depth++; depth > maxRangeDepth {
			return fmt.Errorf("range is nested more than %d deep", maxRangeDepth)
		}
		if !overData(n.Pipe) {
			return fmt.Errorf("range over %s: only over a field of the data, such as .PodSpec.Containers", n.Pipe)
		}
	case *parse.IdentifierNode:
		if !allowedFuncs[n.Ident] {
			return fmt.Errorf("function %s is not allowed (allowed: and, or, not, eq, ne, lt, le, gt, ge, index, len, slice)", n.Ident)
		}
	case *parse.TemplateNode:
		return fmt.Errorf("template %q: calling templates is not allowed", n.Name)
	default:
		return fmt.Errorf("%s is not allowed", n)
	}
	for _, c := range children(n) {
		if err := checkNode(c, depth); err != nil {
			return err
		}
	}
	return nil
}

// children are a parse-tree node's direct children, without the nil ones
// (an if without else has a nil ElseList).
func children(n parse.Node) []parse.Node {
	var out []parse.Node
	add := func(ns ...parse.Node) {
		for _, c := range ns {
			if c != nil && !reflect.ValueOf(c).IsNil() {
				out = append(out, c)
			}
		}
	}
	branch := func(b *parse.BranchNode) { add(b.Pipe, b.List, b.ElseList) }
	switch n := n.(type) {
	case *parse.ListNode:
		add(n.Nodes...)
	case *parse.ActionNode:
		add(n.Pipe)
	case *parse.IfNode:
		branch(&n.BranchNode)
	case *parse.WithNode:
		branch(&n.BranchNode)
	case *parse.RangeNode:
		branch(&n.BranchNode)
	case *parse.PipeNode:
		for _, c := range n.Cmds {
			add(c)
		}
	case *parse.CommandNode:
		add(n.Args...)
	case *parse.ChainNode:
		add(n.Node)
	}
	return out
}

// overData reports whether a range's pipeline is a single field of the
// data (.A.B, $.A.B, $v.A): never a number, which would range that many
// times, nor a function's result.
func overData(p *parse.PipeNode) bool {
	if p == nil || len(p.Cmds) != 1 || len(p.Cmds[0].Args) != 1 {
		return false
	}
	switch a := p.Cmds[0].Args[0].(type) {
	case *parse.FieldNode:
		return true
	case *parse.VariableNode:
		return len(a.Ident) >= 2
	}
	return false
}

// usesField reports whether n or a node under it reads the top-level
// field name (.Name or $.Name).
func usesField(n parse.Node, name string) bool {
	switch n := n.(type) {
	case *parse.FieldNode:
		if n.Ident[0] == name {
			return true
		}
	case *parse.VariableNode:
		if len(n.Ident) >= 2 && n.Ident[0] == "$" && n.Ident[1] == name {
			return true
		}
	}
	for _, c := range children(n) {
		if usesField(c, name) {
			return true
		}
	}
	return false
}

// podData and nodeData are what templates see of a pod and a node.
func podData(pod *corev1.Pod) (meta, spec any) {
	return metaData(&pod.ObjectMeta), plain(reflect.ValueOf(pod.Spec))
}

func nodeData(node *corev1.Node) (meta, spec any) {
	return metaData(&node.ObjectMeta), plain(reflect.ValueOf(node.Spec))
}

func metaData(m *metav1.ObjectMeta) any {
	out := plain(reflect.ValueOf(*m)).(map[string]any)
	delete(out, "ManagedFields") // large, and nothing an identity is made of
	return out
}

var (
	timeType     = reflect.TypeFor[time.Time]()
	metaTimeType = reflect.TypeFor[metav1.Time]()
	quantityType = reflect.TypeFor[resource.Quantity]()
	intstrType   = reflect.TypeFor[intstr.IntOrString]()
)

// plain turns v into maps (struct fields by Go name, string-keyed maps),
// slices, strings and booleans, with numbers and times written out as
// strings: values with no methods a template could call, and no number a
// range could count up to.
func plain(v reflect.Value) any {
	switch v.Type() {
	case timeType:
		return v.Interface().(time.Time).UTC().Format(time.RFC3339)
	case metaTimeType:
		t := v.Interface().(metav1.Time)
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	case quantityType:
		q := v.Interface().(resource.Quantity)
		return q.String()
	case intstrType:
		i := v.Interface().(intstr.IntOrString)
		return i.String()
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return plain(v.Elem())
	case reflect.Struct:
		out := make(map[string]any, v.NumField())
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.IsExported() {
				out[f.Name] = plain(v.Field(i))
			}
		}
		return out
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			return nil
		}
		out := make(map[string]any, v.Len())
		for it := v.MapRange(); it.Next(); {
			out[it.Key().String()] = plain(it.Value())
		}
		return out
	case reflect.Slice, reflect.Array:
		out := make([]any, v.Len())
		for i := range out {
			out[i] = plain(v.Index(i))
		}
		return out
	case reflect.String:
		return v.String()
	case reflect.Bool:
		return v.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(v.Uint(), 10)
	case reflect.Float32, reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	}
	return nil
}
