package sandbox

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/hrsync/hrsync/connector"
	"github.com/hrsync/hrsync/connector/lms/scim"
)

// patchError is a PATCH request the sandbox cannot apply: 400 with scimType.
type patchError struct{ scimType, detail string }

func (e *patchError) Error() string { return e.scimType + ": " + e.detail }

func badPatch(scimType, format string, args ...any) *patchError {
	return &patchError{scimType: scimType, detail: fmt.Sprintf(format, args...)}
}

var (
	coreURN       = strings.ToLower(scim.SchemaUser)
	enterpriseURN = strings.ToLower(scim.SchemaEnterpriseUser)
	trainingURN   = strings.ToLower(scim.SchemaTrainingUser)
)

// patch applies a PATCH of the user id, conditional on ifMatch: the operations
// on the account (applyPatch), and a remove of the training extension as a whole
// (path scim.SchemaTrainingUser), which deletes the account's learning records as
// DeleteTraining does. The account's changes are checked and committed first,
// and move the version on (also for a PATCH that only removes the training);
// the training goes after them, so a failed PATCH deletes nothing. The removal
// logs no op. It returns the user as it then is.
func (l *LMS) patch(op, id, ifMatch string, ops []scim.PatchOperation) (resource, error) {
	var rest []scim.PatchOperation
	removeTraining := false
	for _, o := range ops {
		if strings.EqualFold(o.Op, "remove") && strings.EqualFold(strings.TrimSpace(o.Path), scim.SchemaTrainingUser) {
			removeTraining = true
			continue
		}
		rest = append(rest, o)
	}
	res, err := l.modify(op, id, ifMatch, func(a *connector.Account) ([]OpKind, error) {
		return applyPatch(a, rest)
	})
	if err != nil || !removeTraining {
		return res, err
	}
	if err := l.clearTraining(op, id); err != nil {
		return resource{}, err
	}
	return l.get(op, id)
}

// applyPatch applies PATCH operations (RFC 7644 §3.5.2) to a: add and replace
// set an attribute, remove clears it. It supports the attributes that hrsync
// manages, addressed by path or, without a path, as the keys of an object value.
// It returns the ops to log: activate/deactivate if active was set, update if
// anything else was.
func applyPatch(a *connector.Account, ops []scim.PatchOperation) ([]OpKind, error) {
	var touchedActive, touchedProfile bool
	set := func(path string, raw json.RawMessage) error {
		isActive, err := setAttr(a, path, raw)
		touchedActive = touchedActive || isActive
		touchedProfile = touchedProfile || !isActive
		return err
	}
	for i, op := range ops {
		switch strings.ToLower(op.Op) {
		case "add", "replace":
			if op.Path != "" {
				if err := set(op.Path, op.Value); err != nil {
					return nil, err
				}
				continue
			}
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(op.Value, &obj); err != nil || obj == nil {
				return nil, badPatch(scim.ErrInvalidValue, "Operations[%d]: without a path, value must be an object", i)
			}
			for k, v := range obj {
				if strings.EqualFold(k, "schemas") || strings.EqualFold(k, "meta") || strings.EqualFold(k, "id") {
					continue
				}
				if err := set(k, v); err != nil {
					return nil, err
				}
			}
		case "remove":
			if op.Path == "" {
				return nil, badPatch(scim.ErrNoTarget, "Operations[%d]: remove needs a path", i)
			}
			if err := set(op.Path, json.RawMessage("null")); err != nil {
				return nil, err
			}
		default:
			return nil, badPatch(scim.ErrInvalidSyntax, "Operations[%d]: unknown op %q", i, op.Op)
		}
	}
	var kinds []OpKind
	if touchedProfile {
		kinds = append(kinds, OpUpdate)
	}
	if touchedActive {
		kinds = append(kinds, activeOp(a.Active))
	}
	return kinds, nil
}

// setAttr sets the attribute at path to raw (JSON null clears it) and reports
// whether the attribute was active.
func setAttr(a *connector.Account, path string, raw json.RawMessage) (isActive bool, err error) {
	p := strings.ToLower(strings.TrimSpace(path))
	if rest, ok := strings.CutPrefix(p, coreURN+":"); ok {
		p = rest
	}
	if p == enterpriseURN {
		return false, setObject(raw, func(k string, v json.RawMessage) error {
			_, err := setAttr(a, scim.SchemaEnterpriseUser+":"+k, v)
			return err
		})
	}
	if rest, ok := strings.CutPrefix(p, enterpriseURN+":"); ok {
		return false, setEnterprise(a, rest, raw)
	}
	if p == trainingURN || strings.HasPrefix(p, trainingURN+":") {
		return false, badPatch(scim.ErrMutability, "%s is read-only; it can only be removed as a whole", scim.SchemaTrainingUser)
	}
	str := func(dst *string) error { return setString(dst, path, raw) }
	switch {
	case p == "active":
		return true, setBool(&a.Active, path, raw)
	case p == "username":
		if err := str(&a.UserName); err != nil {
			return false, err
		}
		if a.UserName == "" {
			return false, badPatch(scim.ErrInvalidValue, "userName is required")
		}
		return false, nil
	case p == "externalid":
		return false, str(&a.ExternalID)
	case p == "title":
		return false, str(&a.Profile.JobTitle)
	case p == "locale":
		return false, str(&a.Profile.Locale)
	case p == "name.givenname":
		return false, str(&a.Profile.GivenName)
	case p == "name.familyname":
		return false, str(&a.Profile.FamilyName)
	case p == "name":
		if isNull(raw) {
			a.Profile.GivenName, a.Profile.FamilyName = "", ""
			return false, nil
		}
		return false, setObject(raw, func(k string, v json.RawMessage) error {
			_, err := setAttr(a, "name."+k, v)
			return err
		})
	case p == "emails":
		if isNull(raw) {
			a.Profile.Email = ""
			return false, nil
		}
		var emails []scim.Email
		if err := json.Unmarshal(raw, &emails); err != nil {
			return false, badPatch(scim.ErrInvalidValue, "%s: want an array of emails", path)
		}
		a.Profile.Email = scim.PrimaryEmail(emails)
		return false, nil
	case p == "emails.value", strings.HasPrefix(p, "emails[") && strings.HasSuffix(p, "].value"):
		// e.g. emails[type eq "work"].value: hrsync keeps one email, so any
		// selector addresses it.
		return false, str(&a.Profile.Email)
	}
	return false, badPatch(scim.ErrInvalidPath, "attribute %q is not supported", path)
}

func setEnterprise(a *connector.Account, attr string, raw json.RawMessage) error {
	path := scim.SchemaEnterpriseUser + ":" + attr
	switch attr {
	case "employeenumber":
		return setString(&a.Profile.EmployeeNumber, path, raw)
	case "department":
		return setString(&a.Profile.OrgUnit, path, raw)
	case "manager.value":
		return setString(&a.Profile.ManagerID, path, raw)
	case "manager":
		if isNull(raw) {
			a.Profile.ManagerID = ""
			return nil
		}
		var m scim.Manager
		if err := json.Unmarshal(raw, &m); err != nil {
			// Some clients send the manager's id as a bare string.
			return setString(&a.Profile.ManagerID, path, raw)
		}
		a.Profile.ManagerID = m.Value
		return nil
	}
	return badPatch(scim.ErrInvalidPath, "attribute %q is not supported", path)
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}

// setObject calls set for each key of the JSON object raw.
func setObject(raw json.RawMessage, set func(k string, v json.RawMessage) error) error {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return badPatch(scim.ErrInvalidValue, "want an object, got %s", raw)
	}
	for k, v := range obj {
		if err := set(k, v); err != nil {
			return err
		}
	}
	return nil
}

func setString(dst *string, path string, raw json.RawMessage) error {
	if isNull(raw) {
		*dst = ""
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return badPatch(scim.ErrInvalidValue, "%s: want a string, got %s", path, raw)
	}
	return nil
}

// setBool accepts true/false and, as some clients send them, "True"/"False".
func setBool(dst *bool, path string, raw json.RawMessage) error {
	if isNull(raw) {
		return badPatch(scim.ErrInvalidValue, "%s cannot be removed", path)
	}
	if json.Unmarshal(raw, dst) == nil {
		return nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		switch strings.ToLower(s) {
		case "true":
			*dst = true
			return nil
		case "false":
			*dst = false
			return nil
		}
	}
	return badPatch(scim.ErrInvalidValue, "%s: want a boolean, got %s", path, raw)
}
