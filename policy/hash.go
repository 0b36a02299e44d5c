package policy

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"

	"github.com/scopegate/scopegate/internal/bytesconv"
)

// Hash formats of api_clients.api_key_hash (SPEC §3), told apart by prefix:
//
//   - "sha256:<64 hex>" or bare 64 hex: SHA-256 of the secret's text;
//   - "$2a$", "$2b$", "$2y$": bcrypt;
//   - "$argon2id$v=19$m=<KiB>,t=<iterations>,p=<threads>$<salt>$<hash>": Argon2id
//     in PHC form, salt and hash in unpadded standard base64.
//
// Anything else never verifies. Comparisons are constant-time.

type hashKind uint8

const (
	hashInvalid hashKind = iota
	hashSHA256
	hashBcrypt
	hashArgon2id
)

// Argon2id parameter bounds: a stored hash with larger costs is treated as
// malformed rather than allowed to stall the gateway.
const (
	argonMaxMemoryKiB = 1 << 20 // 1 GiB
	argonMaxTime      = 64
	argonMaxKeyLen    = 128
)

type verifier struct {
	kind hashKind
	sum  [sha256.Size]byte // hashSHA256
	// *slowHash is set for bcrypt and Argon2id only, so a SHA-256 client
	// (the common case) carries no room for them.
	*slowHash
}

// slowHash is the part of a verifier that only bcrypt and Argon2id need,
// with the outcomes of their checks remembered.
type slowHash struct {
	bcrypt []byte // hashBcrypt: the encoded hash
	// hashArgon2id
	salt, key     []byte
	memory, iters uint32
	threads       uint8

	verified verifiedCache
}

var errHashFormat = errors.New("unknown or malformed api_key_hash format")

// compileHash parses a stored hash. Its errors never include the hash.
func compileHash(h string) (verifier, error) {
	switch {
	case strings.HasPrefix(h, "sha256:"):
		return compileSHA256(h[len("sha256:"):])
	case len(h) == 64:
		return compileSHA256(h)
	case strings.HasPrefix(h, "$2a$"), strings.HasPrefix(h, "$2b$"), strings.HasPrefix(h, "$2y$"):
		if _, err := bcrypt.Cost([]byte(h)); err != nil {
			return verifier{}, errHashFormat
		}
		return verifier{kind: hashBcrypt, slowHash: &slowHash{bcrypt: []byte(h)}}, nil
	case strings.HasPrefix(h, "$argon2id$"):
		return compileArgon2id(h)
	}
	return verifier{}, errHashFormat
}

func compileSHA256(hx string) (verifier, error) {
	v := verifier{kind: hashSHA256}
	if len(hx) != 64 {
		return verifier{}, errHashFormat
	}
	if _, err := hex.Decode(v.sum[:], []byte(hx)); err != nil {
		return verifier{}, errHashFormat
	}
	return v, nil
}

func compileArgon2id(h string) (verifier, error) {
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, hash
	parts := strings.Split(h, "$")
	if len(parts) != 6 || parts[1] != "argon2id" || parts[2] != "v=19" {
		return verifier{}, errHashFormat
	}
	v := verifier{kind: hashArgon2id, slowHash: &slowHash{}}
	params := strings.Split(parts[3], ",")
	if len(params) != 3 {
		return verifier{}, errHashFormat
	}
	var seen [3]bool
	for _, p := range params {
		k, val, ok := strings.Cut(p, "=")
		if !ok {
			return verifier{}, errHashFormat
		}
		n, err := strconv.ParseUint(val, 10, 32)
		if err != nil || n == 0 {
			return verifier{}, errHashFormat
		}
		switch k {
		case "m":
			if n > argonMaxMemoryKiB || seen[0] {
				return verifier{}, errHashFormat
			}
			v.memory, seen[0] = uint32(n), true
		case "t":
			if n > argonMaxTime || seen[1] {
				return verifier{}, errHashFormat
			}
			v.iters, seen[1] = uint32(n), true
		case "p":
			if n > 255 || seen[2] {
				return verifier{}, errHashFormat
			}
			v.threads, seen[2] = uint8(n), true
		default:
			return verifier{}, errHashFormat
		}
	}
	if !seen[0] || !seen[1] || !seen[2] || v.memory < 8*uint32(v.threads) {
		return verifier{}, errHashFormat
	}
	var err error
	if v.salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil || len(v.salt) < 8 {
		return verifier{}, errHashFormat
	}
	if v.key, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil || len(v.key) < 16 || len(v.key) > argonMaxKeyLen {
		return verifier{}, errHashFormat
	}
	return v, nil
}

// slow reports whether verification is expensive enough to cache.
func (v *verifier) slow() bool { return v.kind == hashBcrypt || v.kind == hashArgon2id }

// verify reports whether secret matches. The SHA-256 path does not allocate.
func (v *verifier) verify(secret string) bool {
	switch v.kind {
	case hashSHA256:
		sum := sha256.Sum256(bytesconv.Bytes(secret))
		return subtle.ConstantTimeCompare(sum[:], v.sum[:]) == 1
	case hashBcrypt:
		return bcrypt.CompareHashAndPassword(v.bcrypt, []byte(secret)) == nil
	case hashArgon2id:
		k := argon2.IDKey([]byte(secret), v.salt, v.iters, v.memory, v.threads, uint32(len(v.key)))
		return subtle.ConstantTimeCompare(k, v.key) == 1
	}
	return false
}
