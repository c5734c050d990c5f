package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// The commands the documentation shows, and the advice hrsync prints, are run by
// TestDocCommands against a real store, so that a doc that drifts from the command
// line fails the build (issue #11).
//
// What counts as a command: in README.md and docs/*.md, every line of a fenced code
// block tagged sh, bash, shell or console (or untagged) that starts with "hrsync "
// or "go run ./cmd/hrsync " ("$ " prompts and trailing "# comments" allowed, "\"
// continues a line). A synopsis with placeholders belongs in a ```text block, which
// is not run. A command must be runnable as written: no "...", no [optional] parts.

// docCommand is one command line of the documentation.
type docCommand struct {
	file string // relative to the repository root
	line int
	text string            // as written, continuation lines joined
	args []string          // the words after "hrsync"
	env  map[string]string // VAR=value words before it ("..." is a secret the reader has)
}

var (
	envAssignment  = regexp.MustCompile(`^[A-Z][A-Z0-9_]*=`)
	envAssignments = regexp.MustCompile(`^([A-Z][A-Z0-9_]*=\S* )+`)
)

func (d docCommand) String() string { return fmt.Sprintf("%s:%d: %s", d.file, d.line, d.text) }

// docFiles are the documents whose commands are run, in the order they are run.
func docFiles(t *testing.T) []string {
	t.Helper()
	docs, err := filepath.Glob(filepath.Join("..", "..", "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(docs)
	return append([]string{filepath.Join("..", "..", "README.md")}, docs...)
}

var shellInfo = map[string]bool{"": true, "sh": true, "bash": true, "shell": true, "console": true}

// readDocCommands returns the commands of the file at path.
func readDocCommands(path string) ([]docCommand, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	rel := strings.TrimPrefix(filepath.ToSlash(path), "../../")
	var out []docCommand
	var inBlock, shell bool
	lines := strings.Split(string(data), "\n")
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		if strings.HasPrefix(l, "```") {
			if inBlock {
				inBlock = false
			} else {
				inBlock, shell = true, shellInfo[strings.TrimSpace(strings.TrimPrefix(l, "```"))]
			}
			continue
		}
		if !inBlock || !shell {
			continue
		}
		l = strings.TrimPrefix(l, "$ ")
		if !strings.HasPrefix(envAssignments.ReplaceAllString(l, ""), "hrsync ") && !strings.HasPrefix(l, "go run ./cmd/hrsync ") {
			continue
		}
		start := i
		for strings.HasSuffix(l, `\`) && i+1 < len(lines) {
			i++
			l = strings.TrimSuffix(l, `\`) + " " + strings.TrimSpace(lines[i])
		}
		words, err := shellWords(l)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", rel, start+1, err)
		}
		env := map[string]string{}
		for len(words) > 0 && envAssignment.MatchString(words[0]) {
			k, v, _ := strings.Cut(words[0], "=")
			env[k], words = v, words[1:]
		}
		if words[0] == "go" {
			words = words[3:] // go run ./cmd/hrsync
		} else {
			words = words[1:]
		}
		out = append(out, docCommand{file: rel, line: start + 1, text: l, args: words, env: env})
	}
	return out, nil
}

// shellWords splits s as a POSIX shell would split a simple command: words
// separated by blanks, '...' and "..." quoting (with \" and \\ inside double
// quotes), and a # that starts a word begins a comment.
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			if inWord {
				words, inWord = append(words, cur.String()), false
				cur.Reset()
			}
		case c == '#' && !inWord:
			i = len(s)
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated ' quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i, inWord = i+1+j, true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New(`unterminated " quote`)
			}
			inWord = true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	if len(words) == 0 {
		return nil, errors.New("empty command")
	}
	return words, nil
}

// TestShellWords: the splitting the doc commands rely on.
func TestShellWords(t *testing.T) {
	for in, want := range map[string][]string{
		`hrsync holds approve 7 --by alice --reason "acme confirmed the leavers"`: {"hrsync", "holds", "approve", "7", "--by", "alice", "--reason", "acme confirmed the leavers"},
		`hrsync audit --worker hr:w-1001   # one person`:                          {"hrsync", "audit", "--worker", "hr:w-1001"},
		`hrsync x --reason 'a "b"' --n "x\"y"`:                                    {"hrsync", "x", "--reason", `a "b"`, "--n", `x"y`},
		`hrsync x a#b`:                                                            {"hrsync", "x", "a#b"},
	} {
		got, err := shellWords(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("shellWords(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := shellWords(`hrsync x "open`); err == nil {
		t.Error(`shellWords accepted an unterminated quote`)
	}
}

// parseCheck reports whether args parse as an hrsync command line: the command
// exists and is runnable, its flags exist and take their values, the number of
// arguments fits and the required flags are there. Nothing runs.
func parseCheck(args []string) error {
	root := newRootCmd(&environment{getenv: func(string) string { return "" }, stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}})
	c, rest, err := root.Find(args)
	if err != nil {
		return err
	}
	if slices.Contains(rest, "--help") || slices.Contains(rest, "-h") {
		return nil // the help of the command found
	}
	if !c.Runnable() {
		return fmt.Errorf("%q is not a command that runs (missing subcommand?)", c.CommandPath())
	}
	if err := c.ParseFlags(rest); err != nil {
		return fmt.Errorf("%s: %w", c.CommandPath(), err)
	}
	if err := c.ValidateArgs(c.Flags().Args()); err != nil {
		return fmt.Errorf("%s: %w", c.CommandPath(), err)
	}
	if err := c.ValidateRequiredFlags(); err != nil {
		return fmt.Errorf("%s: %w", c.CommandPath(), err)
	}
	return nil
}

var (
	adviceRe = regexp.MustCompile(`\bhrsync ([a-z][^\n]*)`)
	// argRe: a word that reads as an argument of advice rather than prose: a
	// placeholder, a number, an ID such as hr:w-1, a file, a dashed name.
	argRe = regexp.MustCompile(`^(%[dsqv]|\d+|[A-Z][A-Z_:]*|[\w./-]+\.(csv|json|yaml|yml|xlsx)|[a-z0-9]+(-[a-z0-9]+)+|[\w-]+:[\w%-]+|-|"[^"]*")$`)
)

// adviceIn returns the hrsync command lines that text advises: "hrsync", the
// words that name a command, then its flags (with their values) and arguments,
// up to where the prose resumes. "hrsync keeps ..." names no command: not advice.
func adviceIn(text string) []string {
	root := newRootCmd(&environment{getenv: func(string) string { return "" }, stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}})
	var out []string
	for _, m := range adviceRe.FindAllStringSubmatch(text, -1) {
		toks := adviceTokens(m[1])
		c, i := root, 0
		var words []string
		for ; i < len(toks); i++ {
			name := strings.TrimRight(toks[i], ".,;:)")
			next := subcommand(c, name)
			if next == nil {
				break
			}
			c, words = next, append(words, name)
			if name != toks[i] {
				i++
				toks = toks[:i] // the sentence goes on after the command's name
				break
			}
		}
		if c == root {
			continue
		}
		for ; i < len(toks); i++ {
			t := toks[i]
			trimmed := strings.TrimRight(t, ".,;:)")
			last := trimmed != t
			if strings.HasPrefix(trimmed, "--") {
				words = append(words, trimmed)
				name, _, hasValue := strings.Cut(strings.TrimPrefix(trimmed, "--"), "=")
				f := c.Flags().Lookup(name)
				if !hasValue && !last && (f == nil || f.NoOptDefVal == "") {
					if i+1 < len(toks) && (f != nil || argRe.MatchString(strings.TrimRight(toks[i+1], ".,;:)"))) {
						i++
						v := strings.TrimRight(toks[i], ".,;:)")
						last = v != toks[i]
						words = append(words, v)
					} else if f != nil {
						words = append(words, "x") // the value follows in code: "... --reason " + why
					}
				}
			} else if argRe.MatchString(trimmed) {
				words = append(words, trimmed)
			} else {
				break
			}
			if last {
				break
			}
		}
		out = append(out, strings.Join(words, " "))
	}
	return out
}

// adviceTokens splits advice at blanks, keeping a "quoted phrase" one token.
func adviceTokens(s string) []string {
	var out []string
	f := strings.Fields(s)
	for i := 0; i < len(f); i++ {
		t := f[i]
		if strings.HasPrefix(t, `"`) && !(len(t) > 1 && strings.HasSuffix(t, `"`)) {
			for i+1 < len(f) && !strings.HasSuffix(t, `"`) {
				i++
				t += " " + f[i]
			}
		}
		out = append(out, t)
	}
	return out
}

// subcommand returns c's subcommand named name, or nil.
func subcommand(c *cobra.Command, name string) *cobra.Command {
	for _, s := range c.Commands() {
		if s.Name() == name || slices.Contains(s.Aliases, name) {
			return s
		}
	}
	return nil
}

// placeholders are the words advice uses for what a person fills in, with a value
// that parses.
var placeholders = strings.NewReplacer("%d", "1", "%s", "hr", "%q", `"x"`, "%v", "x", "FEED:ID", "hr:w-1", "NAME", "alice",
	"TEXT", "why", "approve|reject", "approve", "ID", "1", "DIR", "reports", "FILE", "f.csv", "ADDR", "127.0.0.1:1")

// parseAdvice parse-checks one advised command line, its placeholders filled in.
// Advice that only names a command (no flags or arguments) needs only to name one.
func parseAdvice(adv string) error {
	words, err := shellWords(placeholders.Replace(adv))
	if err != nil {
		return err
	}
	root := newRootCmd(&environment{getenv: func(string) string { return "" }, stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}})
	if c, rest, err := root.Find(words); err == nil && len(rest) == 0 && c != root {
		return nil
	}
	return parseCheck(words)
}

// TestAdviceInTheSourceParses: every command hrsync's code prints as advice (a
// string literal naming "hrsync <command> ..." in a non-test Go file) parses with
// today's command line, its placeholders filled in. The advice printed in a real
// run is run by TestDocCommands.
func TestAdviceInTheSourceParses(t *testing.T) {
	lit := regexp.MustCompile("\"(?:[^\"\\\\\\n]|\\\\.)*\"|`[^`]*`")
	var files []string
	for _, dir := range []string{".", "internal/*", "../../connector", "../../connector/*", "../../store", "../../events"} {
		m, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	checked := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for n := 1; sc.Scan(); n++ {
			line := sc.Text()
			if strings.HasPrefix(strings.TrimSpace(line), "//") {
				continue
			}
			for _, l := range lit.FindAllString(line, -1) {
				text := l[1 : len(l)-1]
				if l[0] == '"' {
					if text, err = strconv.Unquote(l); err != nil {
						t.Fatalf("%s:%d: %v", f, n, err)
					}
				}
				for _, adv := range adviceIn(text) {
					if err := parseAdvice(adv); err != nil {
						t.Errorf("%s:%d: advice %q does not parse: %v", f, n, adv, err)
					}
					checked++
				}
			}
		}
	}
	if checked < 10 {
		t.Fatalf("found only %d advice strings; the extraction is broken", checked)
	}
	t.Logf("%d advice strings parse", checked)
}

// TestDocCommandsAreConcrete: every documented command parses as written, and
// none hides a part behind "..." or [brackets] (a synopsis belongs in ```text).
func TestDocCommandsAreConcrete(t *testing.T) {
	n := 0
	for _, f := range docFiles(t) {
		cmds, err := readDocCommands(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cmds {
			n++
			if text := envAssignments.ReplaceAllString(c.text, ""); strings.Contains(text, "...") || strings.Contains(text, " [") {
				t.Errorf("%v: not runnable as written (\"...\" or [optional]); give a concrete example, or put a synopsis in a ```text block", c)
				continue
			}
			if err := parseCheck(c.args); err != nil {
				t.Errorf("%v: %v", c, err)
			}
		}
	}
	if n < 20 {
		t.Fatalf("found only %d documented commands; the extraction is broken", n)
	}
}

// runDoc runs args as hrsync would, in the test's working directory, and returns
// the output and exit code.
func runDoc(ctx context.Context, env map[string]string, args []string) (string, int) {
	var out, errOut bytes.Buffer
	err := run(ctx, append([]string{"hrsync"}, args...), func(k string) string { return env[k] }, &out, &errOut)
	text := out.String() + errOut.String()
	if err != nil {
		text += "\nhrsync: " + err.Error()
	}
	return text, exitCode(err)
}

// readOnly are the commands whose printed advice TestDocCommands runs (they
// change nothing); other advice is parse-checked.
func readOnly(args []string) bool {
	p := strings.Join(args[:min(2, len(args))], " ")
	for _, ro := range []string{"holds list", "holds show", "dead list", "review list", "roster list", "audit", "report "} {
		if strings.HasPrefix(p, ro) {
			return true
		}
	}
	return false
}
