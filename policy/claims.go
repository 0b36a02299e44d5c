package policy

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits of what user sync writes (SPEC §14). The columns are unbounded
// text; these bound what a token can put in them.
const (
	// MaxSubjectBytes bounds a subject sync provisions (Authentik's longest
	// subjects, in user_email or user_upn mode, are addresses). A longer
	// subject is never provisioned: identity is not truncated.
	MaxSubjectBytes = 255
	// MaxEmailBytes is RFC 5321's limit on a path (254 octets); a longer
	// address is skipped, never truncated (a cut address is someone else's).
	MaxEmailBytes = 254
	// MaxDisplayNameRunes is the length a display name is truncated to.
	MaxDisplayNameRunes = 200
	// MaxIssuerBytes bounds the iss kept as auth_sync_state.source_version;
	// a longer one is skipped.
	MaxIssuerBytes = 1024
)

// ProfileConfig makes token verification also keep what user sync needs
// (SPEC §14). The zero value keeps nothing: verification reads no claim
// beyond the subject and exp.
type ProfileConfig struct {
	// Enabled maps the email, email_verified, name, preferred_username and
	// iss claims of every verified token to a [UserProfile], once per token
	// (it is cached with the verified token).
	Enabled bool
	// TrustEmail takes the email claim even when email_verified is not true
	// (SCOPEGATE_USER_SYNC_TRUST_EMAIL).
	TrustEmail bool
}

// UserProfile is what user sync writes for a verified token: the users
// columns and the auth_sync_state fields the claims give. Empty strings stand
// for "nothing usable" (NULL in a new row, left as is in an existing one).
type UserProfile struct {
	Email       string // from email, when verified (or trusted) and well-formed
	DisplayName string // from name, else preferred_username, truncated
	Issuer      string // iss: auth_sync_state.source_version
	// Problems says why a claim was skipped or cut ("" when none), for
	// auth_sync_state.last_error: "field: why" phrases joined by "; ".
	Problems string
}

// ProfileFromClaims maps a verified token's claims (as decoded from its
// JSON payload) to the [UserProfile] user sync writes. It never fails: a
// claim of the wrong type (email as a number, name as an object), with a NUL
// or another control character, not valid UTF-8, or too long is skipped and
// named in Problems; a display name is truncated to MaxDisplayNameRunes
// instead. email is taken only when email_verified is the boolean true, or
// trustEmail is set; it must look like an address (one '@' with text on
// both sides, no spaces or controls), as it is sent upstream in a header.
// Identity is never derived from it.
func ProfileFromClaims(claims map[string]any, trustEmail bool) UserProfile {
	var p UserProfile
	var problems []string
	note := func(s string) { problems = append(problems, s) }

	if v, ok := claims["email"]; ok && v != nil {
		email, why := claimText(v, MaxEmailBytes)
		switch {
		case why != "":
			note("email: " + why)
		case email == "":
		case !looksLikeEmail(email):
			note("email: not an address")
		case claims["email_verified"] != true && !trustEmail:
			note("email: email_verified is not true")
		default:
			p.Email = email
		}
	}
	for _, c := range []string{"name", "preferred_username"} {
		v, ok := claims[c]
		if !ok || v == nil {
			continue
		}
		name, why := claimText(v, 0)
		if why != "" {
			note(c + ": " + why)
			continue
		}
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if utf8.RuneCountInString(name) > MaxDisplayNameRunes {
			name = truncateRunes(name, MaxDisplayNameRunes)
			note(c + ": truncated to " + strconv.Itoa(MaxDisplayNameRunes) + " characters")
		}
		p.DisplayName = name
		break
	}
	if v, ok := claims["iss"]; ok && v != nil {
		iss, why := claimText(v, MaxIssuerBytes)
		if why != "" {
			note("iss: " + why)
		} else {
			p.Issuer = iss
		}
	}
	p.Problems = strings.Join(problems, "; ")
	return p
}

// StorableSubject reports whether sub can be a users.authentik_sub that user
// sync creates: valid UTF-8 without control characters (PostgreSQL text
// refuses NUL), at most MaxSubjectBytes. Other subjects are looked up but
// never provisioned.
func StorableSubject(sub string) bool {
	_, why := claimText(sub, MaxSubjectBytes)
	return sub != "" && why == ""
}

// claimText returns v as text fit for a column: a string, valid UTF-8,
// without control characters, at most maxBytes long (0: no limit). why is
// "" or the reason it is not.
func claimText(v any, maxBytes int) (s string, why string) {
	s, ok := v.(string)
	if !ok {
		return "", "not a string"
	}
	if !utf8.ValidString(s) {
		return "", "not valid UTF-8"
	}
	if maxBytes > 0 && len(s) > maxBytes {
		return "", "longer than " + strconv.Itoa(maxBytes) + " bytes"
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return "", "contains control characters"
	}
	return s, ""
}

// looksLikeEmail reports whether s has one '@' with text on both sides and
// no spaces: enough to keep junk out of a header, not an RFC 5322 parser.
func looksLikeEmail(s string) bool {
	at := strings.IndexByte(s, '@')
	return at > 0 && at < len(s)-1 && strings.Count(s, "@") == 1 &&
		strings.IndexFunc(s, unicode.IsSpace) < 0
}

// truncateRunes cuts s to its first n runes.
func truncateRunes(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	return s
}

// Differs reports whether p has an email or a display name that u's row
// does not hold: what user sync would write. A field p has nothing usable
// for never differs (sync never clears a column). It does not allocate.
func (p *UserProfile) Differs(u *User) bool {
	return p.Email != "" && p.Email != u.Email || p.DisplayName != "" && p.DisplayName != u.DisplayName
}
