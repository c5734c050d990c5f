package moodle

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hrsync/hrsync/connector"
)

// user is a user as core_user_get_users_by_field and core_user_get_users
// describe it (user_get_user_details): a field that is empty is left out.
type user struct {
	ID           int64             `json:"id"`
	Username     string            `json:"username"`
	FirstName    string            `json:"firstname"`
	LastName     string            `json:"lastname"`
	Email        string            `json:"email"`
	IDNumber     string            `json:"idnumber"`
	Suspended    flexBool          `json:"suspended"`
	FirstAccess  int64             `json:"firstaccess"`
	LastAccess   int64             `json:"lastaccess"`
	CustomFields []customFieldOut  `json:"customfields"`
	Std          map[string]string `json:"-"`
}

// customFieldOut is a custom profile field as a user description carries it:
// type is the field's data type ("text"), shortname its short name. (On the
// way in, customfields[i][type] is the short name.)
type customFieldOut struct {
	Type      string `json:"type"`
	Value     string `json:"value"`
	Name      string `json:"name"`
	ShortName string `json:"shortname"`
}

// UnmarshalJSON reads the fields above and the standard free-text fields.
func (u *user) UnmarshalJSON(b []byte) error {
	type plain user
	if err := json.Unmarshal(b, (*plain)(u)); err != nil {
		return err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	u.Std = map[string]string{}
	for name := range standardFields {
		if raw, ok := all[name]; ok {
			var s string
			if json.Unmarshal(raw, &s) == nil {
				u.Std[name] = s
			}
		}
	}
	return nil
}

// flexBool reads true/false, and 1/0 as older sites send them.
type flexBool bool

func (f *flexBool) UnmarshalJSON(b []byte) error {
	switch string(bytes.TrimSpace(b)) {
	case "true", "1", `"1"`:
		*f = true
	case "false", "0", `"0"`, "null", `""`:
		*f = false
	default:
		return &json.UnmarshalTypeError{Value: string(b), Type: nil}
	}
	return nil
}

// account turns a Moodle user into the port's account, with fields f.
func (u user) account(f Fields) connector.Account {
	a := connector.Account{
		ID:         strconv.FormatInt(u.ID, 10),
		ExternalID: u.IDNumber,
		UserName:   u.Username,
		Active:     !bool(u.Suspended),
		Profile: connector.Profile{
			GivenName:  fromNoName(u.FirstName),
			FamilyName: fromNoName(u.LastName),
		},
	}
	if !isNoEmail(u.Email) {
		a.Profile.Email = u.Email
	}
	custom := map[string]string{}
	for _, c := range u.CustomFields {
		custom[c.ShortName] = c.Value
	}
	for _, e := range f.entries() {
		if e.name == "" {
			continue
		}
		if short, ok := strings.CutPrefix(e.name, CustomFieldPrefix); ok {
			*e.get(&a.Profile) = custom[short]
		} else {
			*e.get(&a.Profile) = u.Std[e.name]
		}
	}
	return a
}

// lastAccess is the user's last access, nil for never (Moodle's 0).
func (u user) lastAccess() *time.Time {
	if u.LastAccess <= 0 {
		return nil
	}
	t := time.Unix(u.LastAccess, 0).UTC()
	return &t
}

// setUser writes a's fields as users[i][...] of a create or an update (with
// its id when id > 0). Every field is written, empty ones too, so that an
// update clears what the account no longer has; the names and email that
// Moodle requires get their placeholders.
func setUser(fm *form, i int, id int64, a connector.Account, f Fields) {
	if id > 0 {
		fm.set(strconv.FormatInt(id, 10), "users", i, "id")
	}
	userName := normUserName(a.UserName)
	fm.set(userName, "users", i, "username")
	fm.set(orNoName(a.Profile.GivenName), "users", i, "firstname")
	fm.set(orNoName(a.Profile.FamilyName), "users", i, "lastname")
	email := a.Profile.Email
	if email == "" {
		email = noEmail(userName)
	}
	fm.set(email, "users", i, "email")
	fm.set(a.ExternalID, "users", i, "idnumber")
	c := 0
	for _, e := range f.entries() {
		if e.name == "" {
			continue
		}
		v := *e.get(&a.Profile)
		if short, ok := strings.CutPrefix(e.name, CustomFieldPrefix); ok {
			fm.set(short, "users", i, "customfields", c, "type")
			fm.set(v, "users", i, "customfields", c, "value")
			c++
		} else {
			fm.set(v, "users", i, e.name)
		}
	}
}

// normUserName is how the adapter writes and looks up a userName: trimmed and
// lower-case, as Moodle stores every username (PARAM_USERNAME), so that
// "Anna@Example.com" and "anna@example.com" are one account, as the port's
// case-insensitive userName demands.
func normUserName(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// emailPattern is the address syntax Moodle's validate_email accepted for a
// long time (lib/moodlelib.php): local part, @, a domain with a dot. Values
// that do not match are never stored, so a lookup of one needs no call (and
// core_user_get_users_by_field would refuse the whole call for it).
var emailPattern = regexp.MustCompile(`^[-!#$%&'*+\\/0-9=?A-Z^_` + "`" + `a-z{|}~]+(\.[-!#$%&'*+\\/0-9=?A-Z^_` + "`" + `a-z{|}~]+)*@[-!#$%&'*+\\/0-9=?A-Z^_` + "`" + `a-z{|}~]+\.[-!#$%&'*+\\./0-9=?A-Z^_` + "`" + `a-z{|}~]+$`)

func validEmail(s string) bool { return len(s) <= 254 && emailPattern.MatchString(s) }

// parseID returns the Moodle user id of an account id; ok is false for an id
// no Moodle user can have (not a positive integer): such an account does not
// exist.
func parseID(id string) (int64, bool) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n <= 0 || strconv.FormatInt(n, 10) != id {
		return 0, false
	}
	return n, true
}

// tagPattern finds what PHP's strip_tags removes from a name: Moodle declares
// names PARAM_NOTAGS and refuses the whole call for a value with a tag.
var tagPattern = regexp.MustCompile(`<[a-zA-Z/!?][^>]*>`)

// badNames reports whether a's names cannot be stored in Moodle.
func badNames(a connector.Account) bool {
	return tagPattern.MatchString(a.Profile.GivenName) || tagPattern.MatchString(a.Profile.FamilyName)
}
