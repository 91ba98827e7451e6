package tokensvc

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// VerificationCode returns the code a terminal app appends to its token
// service URL for a broker: lowercase hex of HMAC-SHA-256 keyed with the
// app's secret over the broker's identity (the exact bytes sent as
// ?broker=). The service accepts upper- or lowercase hex.
func VerificationCode(secret []byte, broker string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(broker))
	return hex.EncodeToString(m.Sum(nil))
}

// Refusal reasons: the "reason" label of tokensvc_auth_failures_total and the
// "reason" field of 401/403 answers. They name what was wrong, never what
// would have been right.
const (
	reasonAddressNotAllowed = "address_not_allowed"
	reasonMissingBearer     = "missing_bearer"
	reasonBadBearer         = "bad_bearer"
	reasonMissingCode       = "missing_code"
	reasonBadCode           = "bad_code"
	reasonBrokerMismatch    = "broker_mismatch"
)

// refusal is a failed caller check.
type refusal struct {
	status int    // 401 or 403
	reason string // one of the reason constants
	detail string // human-readable, no secrets
}

// authPolicy is one loaded AuthConfig. It is immutable after construction.
type authPolicy struct {
	hmacSecrets [][]byte
	bearer      []bearerKey
	allow       []netip.Prefix
}

// bearerKey stores the SHA-256 of a key, so that every comparison is between
// equal-length values and its time says nothing about the key's length.
type bearerKey struct {
	broker string
	digest [sha256.Size]byte
}

// loadAuthPolicy reads the secrets an AuthConfig names. A nil config gives a
// policy that admits everyone.
func loadAuthPolicy(c *AuthConfig, dir string, getenv func(string) string) (*authPolicy, error) {
	p := &authPolicy{}
	if c == nil {
		return p, nil
	}
	var err error
	if p.allow, err = parsePrefixes(c.AllowCIDRs); err != nil {
		return nil, fmt.Errorf("allow_cidrs: %w", err)
	}
	if c.HMACSecretFile != "" || c.HMACSecretEnv != "" {
		raw, err := readSecret(dir, c.HMACSecretFile, c.HMACSecretEnv, getenv, "hmac_secret_file", "hmac_secret_env")
		if err != nil {
			return nil, err
		}
		if p.hmacSecrets, err = parseSecrets(raw); err != nil {
			return nil, fmt.Errorf("hmac secret: %w", err)
		}
	}
	if c.BearerKeysFile != "" || c.BearerKeysEnv != "" {
		raw, err := readSecret(dir, c.BearerKeysFile, c.BearerKeysEnv, getenv, "bearer_keys_file", "bearer_keys_env")
		if err != nil {
			return nil, err
		}
		if c.BearerKeysEnv != "" {
			raw = bytes.ReplaceAll(raw, []byte(","), []byte("\n"))
		}
		if p.bearer, err = parseBearerKeys(raw); err != nil {
			return nil, fmt.Errorf("bearer keys: %w", err)
		}
	}
	return p, nil
}

// parseSecrets splits a secrets file: one secret per line, # comments.
func parseSecrets(raw []byte) ([][]byte, error) {
	var out [][]byte
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		if len(line) < minSecretLen {
			return nil, fmt.Errorf("line %d: secret is %d bytes, want at least %d", n, len(line), minSecretLen)
		}
		out = append(out, bytes.Clone(line))
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("no secret found")
	}
	return out, nil
}

// parseBearerKeys reads "<broker identity> <key>" lines.
func parseBearerKeys(raw []byte) ([]bearerKey, error) {
	var out []bearerKey
	seen := make(map[[sha256.Size]byte]bool)
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			return nil, fmt.Errorf("line %d: want \"<broker identity> <key>\"", n)
		}
		if len(fields[1]) < minSecretLen {
			return nil, fmt.Errorf("line %d (broker %q): key is %d bytes, want at least %d", n, fields[0], len(fields[1]), minSecretLen)
		}
		k := bearerKey{broker: fields[0], digest: sha256.Sum256([]byte(fields[1]))}
		if seen[k.digest] {
			return nil, fmt.Errorf("line %d (broker %q): key is used twice", n, fields[0])
		}
		seen[k.digest] = true
		out = append(out, k)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("no key found")
	}
	return out, nil
}

// check verifies one request from the caller at addr. It returns the broker
// identity the caller proved (empty when no check names one) or a refusal.
// Checks run in order address, bearer key, code; all configured ones must
// pass.
func (p *authPolicy) check(r *http.Request, addr netip.Addr) (string, *refusal) {
	if len(p.allow) > 0 && !containsAddr(p.allow, addr) {
		return "", &refusal{http.StatusForbidden, reasonAddressNotAllowed, "caller address is not in the allow-list"}
	}
	var broker string
	if len(p.bearer) > 0 {
		key, ok := bearerFromHeader(r.Header.Get("Authorization"))
		if !ok {
			return "", &refusal{http.StatusUnauthorized, reasonMissingBearer, "an Authorization: Bearer key is required"}
		}
		name, found := p.matchBearer(key)
		if !found {
			return "", &refusal{http.StatusUnauthorized, reasonBadBearer, "the bearer key is not known"}
		}
		broker = name
	}
	if len(p.hmacSecrets) > 0 {
		q := r.URL.Query()
		claimed, code := q.Get("broker"), q.Get("code")
		if claimed == "" || code == "" {
			return "", &refusal{http.StatusUnauthorized, reasonMissingCode, "the broker and code query parameters are required"}
		}
		if !p.matchCode(claimed, code) {
			return "", &refusal{http.StatusUnauthorized, reasonBadCode, "the verification code does not match the broker identity"}
		}
		if broker != "" && claimed != broker {
			return "", &refusal{http.StatusUnauthorized, reasonBrokerMismatch, "the broker parameter does not name the owner of the bearer key"}
		}
		broker = claimed
	}
	return broker, nil
}

// matchBearer compares key against every configured key in constant time
// (no early exit) and returns the broker identity of the match.
func (p *authPolicy) matchBearer(key string) (string, bool) {
	d := sha256.Sum256([]byte(key))
	match := -1
	for i := range p.bearer {
		if subtle.ConstantTimeCompare(d[:], p.bearer[i].digest[:]) == 1 {
			match = i
		}
	}
	if match < 0 {
		return "", false
	}
	return p.bearer[match].broker, true
}

// matchCode reports whether code is the HMAC of broker under any secret.
func (p *authPolicy) matchCode(broker, code string) bool {
	got, err := hex.DecodeString(code)
	if err != nil || len(got) != sha256.Size {
		return false
	}
	ok := false
	for _, s := range p.hmacSecrets {
		m := hmac.New(sha256.New, s)
		m.Write([]byte(broker))
		if hmac.Equal(got, m.Sum(nil)) {
			ok = true
		}
	}
	return ok
}

func bearerFromHeader(h string) (string, bool) {
	const prefix = "bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	key := strings.TrimSpace(h[len(prefix):])
	return key, key != ""
}

func containsAddr(list []netip.Prefix, addr netip.Addr) bool {
	for _, p := range list {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// callerAddr returns the address a request comes from. The TCP peer is the
// caller unless it is a trusted proxy; then X-Forwarded-For is read from the
// right, skipping further trusted proxies, and the first address that is not
// one is the caller. Entries left of it were written by the caller itself and
// are never believed.
func callerAddr(r *http.Request, trusted []netip.Prefix) (netip.Addr, error) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("unparsable remote address %q", r.RemoteAddr)
	}
	peer = peer.Unmap().WithZone("")
	if len(trusted) == 0 || !containsAddr(trusted, peer) {
		return peer, nil
	}
	hops := r.Header.Values("X-Forwarded-For")
	var list []string
	for _, h := range hops {
		list = append(list, strings.Split(h, ",")...)
	}
	caller := peer
	for i := len(list) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(list[i]))
		if err != nil {
			// A proxy we trust wrote garbage: stop at the last good hop.
			break
		}
		caller = a.Unmap().WithZone("")
		if !containsAddr(trusted, caller) {
			break
		}
	}
	return caller, nil
}
