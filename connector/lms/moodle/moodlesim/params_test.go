package moodlesim

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/hrsync/hrsync/connector/lms/sandbox"
)

func TestParseForm(t *testing.T) {
	t.Parallel()
	body := "users%5B1%5D%5Busername%5D=b&users%5B0%5D%5Busername%5D=a&users%5B0%5D%5Bcustomfields%5D%5B0%5D%5Btype%5D=jobtitle" +
		"&values%5B%5D=x&values%5B%5D=y&odd%5Bkey=1&plain=p%26q"
	root, n, err := parseForm("wstoken=t", body, 1000)
	if err != nil || n != 8 {
		t.Fatalf("parseForm: %d fields, %v", n, err)
	}
	users := root.get("users").items()
	if len(users) != 2 {
		t.Fatalf("%d users", len(users))
	}
	// PHP iterates an array in the order its keys came, not by index.
	if v, _ := users[0].get("username").str(); v != "b" {
		t.Errorf("first user %q, want b", v)
	}
	if v, _ := users[1].get("customfields").items()[0].get("type").str(); v != "jobtitle" {
		t.Errorf("custom field type %q", v)
	}
	if vs := root.get("values").items(); len(vs) != 2 {
		t.Errorf("values[]: %d", len(vs))
	}
	if v, ok := root.get("odd[key").str(); !ok || v != "1" {
		t.Errorf("an unclosed bracket is a plain name: %q %v", v, ok)
	}
	if v, _ := root.get("plain").str(); v != "p&q" {
		t.Errorf("plain %q", v)
	}
	if _, ok := root.get("users").str(); ok {
		t.Errorf("an array read as a string")
	}
	// PHP keeps the first max_input_vars fields and drops the rest.
	root, _, _ = parseForm("", body, 2)
	if us := root.get("users").items(); len(us) != 2 || us[1].get("customfields") != nil || root.get("values") != nil {
		t.Errorf("beyond max_input_vars: %+v", root.keysOf())
	}
}

// TestEnvelopes: errors are HTTP 200 with Moodle's envelope; debuginfo only
// with Debug.
func TestEnvelopes(t *testing.T) {
	t.Parallel()
	for _, debug := range []bool{false, true} {
		srv := httptest.NewServer(New(sandbox.New(), Config{Token: "t", Debug: debug}))
		t.Cleanup(srv.Close)
		post := func(form url.Values) string {
			resp, err := http.PostForm(srv.URL+EndpointPath, form)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("status %d", resp.StatusCode)
			}
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
		base := func(fn string) url.Values {
			return url.Values{"wstoken": {"t"}, "wsfunction": {fn}, "moodlewsrestformat": {"json"}}
		}
		if got := post(url.Values{"wstoken": {"x"}, "wsfunction": {"core_user_get_users"}, "moodlewsrestformat": {"json"}}); !strings.Contains(got, `"errorcode":"invalidtoken"`) {
			t.Errorf("wrong token: %s", got)
		}
		if got := post(base("core_nothing")); !strings.Contains(got, `"exception":"dml_missing_record_exception"`) {
			t.Errorf("unknown function: %s", got)
		}
		f := base("core_user_create_users")
		f.Set("users[0][username]", "Anna")
		f.Set("users[0][firstname]", "A")
		f.Set("users[0][lastname]", "B")
		f.Set("users[0][email]", "a@b.example")
		f.Set("users[0][createpassword]", "1")
		got := post(f)
		if !strings.Contains(got, `"errorcode":"invalidparameter"`) || strings.Contains(got, "debuginfo") != debug {
			t.Errorf("upper-case username, debug %v: %s", debug, got)
		}
		f.Set("users[0][username]", "anna")
		f.Set("users[0][suspended]", "1")
		if got := post(f); !strings.Contains(got, `"errorcode":"invalidparameter"`) || debug && !strings.Contains(got, "Unexpected keys (suspended)") {
			t.Errorf("create with suspended, debug %v: %s", debug, got)
		}
	}
}
