package moodlesim

import (
	"net/url"
	"strconv"
	"strings"
)

// node is one value of a call's parameters as PHP builds them from the form:
// users[0][username]=anna is the leaf username of the element 0 of users.
// Children keep the order their keys first appeared in, as a PHP array does.
type node struct {
	val   *string
	kids  map[string]*node
	order []string
}

func (n *node) child(k string) *node {
	if n.kids == nil {
		n.kids = map[string]*node{}
	}
	c, ok := n.kids[k]
	if !ok {
		c = &node{}
		n.kids[k] = c
		n.order = append(n.order, k)
	}
	return c
}

// get returns the child k, nil if there is none.
func (n *node) get(k string) *node {
	if n == nil {
		return nil
	}
	return n.kids[k]
}

// str returns the leaf's value; ok is false for a missing node or an array.
func (n *node) str() (string, bool) {
	if n == nil || n.val == nil {
		return "", false
	}
	return *n.val, true
}

// items returns the elements of an array in the order PHP iterates them.
func (n *node) items() []*node {
	if n == nil {
		return nil
	}
	out := make([]*node, 0, len(n.order))
	for _, k := range n.order {
		out = append(out, n.kids[k])
	}
	return out
}

// keysOf returns the keys of a structure, in order.
func (n *node) keysOf() []string {
	if n == nil {
		return nil
	}
	return n.order
}

// splitKey splits a form key into PHP's path: "users[0][username]" is users,
// 0, username. A key whose brackets do not close is a plain name, as PHP
// treats it.
func splitKey(k string) []string {
	i := strings.IndexByte(k, '[')
	if i <= 0 {
		return []string{k}
	}
	path := []string{k[:i]}
	rest := k[i:]
	for rest != "" {
		if rest[0] != '[' {
			return []string{k}
		}
		j := strings.IndexByte(rest, ']')
		if j < 0 {
			return []string{k}
		}
		path = append(path, rest[1:j])
		rest = rest[j+1:]
	}
	return path
}

// parseForm builds the parameters of a request from its query and body, in
// order, keeping at most maxVars of them: PHP drops the rest silently
// (max_input_vars). An empty [] appends, as in PHP.
func parseForm(query, body string, maxVars int) (*node, int, error) {
	root := &node{}
	n := 0
	add := func(raw string) error {
		for part := range strings.SplitSeq(raw, "&") {
			if part == "" {
				continue
			}
			k, v, _ := strings.Cut(part, "=")
			k, err := url.QueryUnescape(k)
			if err != nil {
				return err
			}
			v, err = url.QueryUnescape(v)
			if err != nil {
				return err
			}
			n++
			if n > maxVars {
				continue
			}
			cur := root
			for _, p := range splitKey(k) {
				if p == "" {
					p = strconv.Itoa(len(cur.order))
				}
				cur = cur.child(p)
			}
			cur.val = &v
		}
		return nil
	}
	if err := add(query); err != nil {
		return nil, n, err
	}
	if err := add(body); err != nil {
		return nil, n, err
	}
	return root, n, nil
}
