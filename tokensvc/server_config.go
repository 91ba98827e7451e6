package tokensvc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// App kinds accepted in AppConfig.Kind.
const (
	KindFCM  = "fcm"
	KindAPNs = "apns"
)

// Defaults and bounds of the configuration, each with the reason for its value.
const (
	// DefaultAPNsReuseWindow is how long one APNs provider JWT is handed out
	// before a new one is signed. Apple refuses a JWT older than 60 minutes and
	// answers 429 TooManyProviderTokenUpdates when a connection changes its JWT
	// more often than every 20 minutes; 40 minutes sits in the middle, so a
	// broker that uses a JWT until its expires runs out never holds one older
	// than 40 minutes.
	DefaultAPNsReuseWindow = 40 * time.Minute
	// MinAPNsReuseWindow is the shortest allowed window (Apple's 20-minute
	// minimum between token changes).
	MinAPNsReuseWindow = 20 * time.Minute
	// MaxAPNsReuseWindow is the longest allowed window: it leaves 10 minutes of
	// headroom below Apple's 60-minute maximum age for clock skew and for a
	// broker that uses its JWT a little past expires.
	MaxAPNsReuseWindow = 50 * time.Minute

	// DefaultRequestsPerSecond and DefaultRequestBurst bound every caller
	// address. A broker asks once per credential lifetime per app, so a burst
	// of 60 with one new request per second never touches an honest broker
	// (even one behind a NAT with many others) but stops a flood.
	DefaultRequestsPerSecond = 1.0
	DefaultRequestBurst      = 60
	// DefaultFailuresPerMinute and DefaultFailureBurst bound refused requests
	// (bad code, bad bearer key, address not allowed, unknown app) per caller
	// address: 10 mistakes are allowed, then one more every 6 seconds, which
	// makes guessing a 256-bit code or key pointless and keeps logs readable.
	DefaultFailuresPerMinute = 10.0
	DefaultFailureBurst      = 10

	// minSecretLen is the shortest accepted HMAC secret and bearer key.
	// 16 bytes of anything a human would type is still guessable offline, but
	// anything shorter certainly is.
	minSecretLen = 16
)

// appNamePattern restricts app names to what is safe in a URL path segment and
// in a metric label. Names start with a letter or digit so that they never
// collide with the "_unknown" label used for requests naming no known app.
var appNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ServerConfig is the token service's JSON configuration file. Relative file paths
// in it are resolved against Dir (LoadServerConfig sets Dir to the directory of the
// file). Secrets never appear in the file itself: it names files or
// environment variables that hold them.
//
// Example:
//
//	{
//	  "auth": {
//	    "bearer_keys_file": "brokers.keys",
//	    "allow_cidrs": ["203.0.113.0/24", "2001:db8::/32"]
//	  },
//	  "trusted_proxies": ["127.0.0.1/32"],
//	  "apps": [
//	    {"name": "mydmrapp", "kind": "fcm",
//	     "service_account_file": "mydmrapp-firebase-adminsdk.json",
//	     "auth": {"hmac_secret_env": "MYDMRAPP_SECRET", "bearer_keys_file": "brokers.keys"}},
//	    {"name": "mydmrapp-ios", "kind": "apns",
//	     "key_file": "AuthKey_ABC123DEFG.p8", "key_id": "ABC123DEFG",
//	     "team_id": "DEF123GHIJ", "topic": "com.example.mydmrapp",
//	     "environment": "production"}
//	  ]
//	}
type ServerConfig struct {
	// Apps lists the apps this service mints credentials for; at least one,
	// names unique.
	Apps []AppConfig `json:"apps"`
	// Auth is the caller verification used by every app that has no Auth
	// block of its own. Nil means callers are not verified (only sensible
	// behind another gate, such as a VPN or a proxy that checks client
	// certificates).
	Auth *AuthConfig `json:"auth,omitempty"`
	// TrustedProxies lists the CIDRs of reverse proxies whose
	// X-Forwarded-For header is believed. Empty (the default) means
	// X-Forwarded-For is ignored and the TCP peer is the caller.
	TrustedProxies []string `json:"trusted_proxies,omitempty"`
	// RateLimit bounds requests and refusals per caller address. The zero
	// value applies the defaults.
	RateLimit RateLimitConfig `json:"rate_limit"`

	// Dir is the directory relative file paths are resolved against; empty
	// means the working directory. It is not read from JSON.
	Dir string `json:"-"`
}

// AppConfig describes one app (one Firebase project or one APNs topic).
type AppConfig struct {
	// Name is the app's name in the URL: GET <prefix>/<name>. 1–128 characters
	// from [A-Za-z0-9._-], starting with a letter or digit.
	Name string `json:"name"`
	// Kind is "fcm" or "apns".
	Kind string `json:"kind"`

	// ServiceAccountFile (fcm) is the path of the Google service-account JSON
	// key downloaded from the Firebase console. Exactly one of
	// ServiceAccountFile and ServiceAccountEnv is required for fcm apps.
	ServiceAccountFile string `json:"service_account_file,omitempty"`
	// ServiceAccountEnv (fcm) names an environment variable that holds the
	// service-account JSON itself.
	ServiceAccountEnv string `json:"service_account_env,omitempty"`
	// ProjectID (fcm, optional) overrides the project_id of the service
	// account, for a service account that sends for another project.
	ProjectID string `json:"project_id,omitempty"`

	// KeyFile (apns) is the path of the .p8 signing key (PKCS#8 PEM, EC
	// P-256). Exactly one of KeyFile and KeyEnv is required for apns apps.
	KeyFile string `json:"key_file,omitempty"`
	// KeyEnv (apns) names an environment variable holding the .p8 PEM text.
	KeyEnv string `json:"key_env,omitempty"`
	// KeyID (apns) is the 10-character key id Apple shows for the key.
	KeyID string `json:"key_id,omitempty"`
	// TeamID (apns) is the 10-character Apple developer team id.
	TeamID string `json:"team_id,omitempty"`
	// Topic (apns) is the app's bundle id, returned to brokers as "topic".
	Topic string `json:"topic,omitempty"`
	// Environment (apns) is "production" or "development"; empty means
	// production.
	Environment string `json:"environment,omitempty"`
	// JWTReuseWindow (apns) is how long one provider JWT is handed out,
	// between 20m and 50m; zero means DefaultAPNsReuseWindow (40m).
	JWTReuseWindow Duration `json:"jwt_reuse_window,omitempty"`

	// Auth, when present, replaces the service-wide ServerConfig.Auth for this
	// app entirely (it is not merged field by field).
	Auth *AuthConfig `json:"auth,omitempty"`
}

// AuthConfig selects how callers are verified. Every configured check must
// pass; an empty AuthConfig verifies nothing.
type AuthConfig struct {
	// HMACSecretFile is a file with one verification secret per line (blank
	// lines and lines starting with # are skipped; surrounding whitespace is
	// trimmed; at least 16 bytes each). A caller must then send
	// ?broker=<identity>&code=<hex HMAC-SHA-256(secret, identity)> computed
	// with any one of them. Several lines let a new app release use a new
	// secret while old installs keep working.
	HMACSecretFile string `json:"hmac_secret_file,omitempty"`
	// HMACSecretEnv names an environment variable holding the secrets, in
	// the same format (newline-separated).
	HMACSecretEnv string `json:"hmac_secret_env,omitempty"`

	// BearerKeysFile is a file of "<broker identity> <key>" lines (blank
	// lines and # comments skipped; keys at least 16 bytes). A caller must
	// then send "Authorization: Bearer <key>". One identity may have several
	// keys, which is how keys are rotated. When the HMAC check is configured
	// too, the ?broker= identity must equal the identity of the bearer key.
	BearerKeysFile string `json:"bearer_keys_file,omitempty"`
	// BearerKeysEnv names an environment variable holding bearer keys in the
	// same format; entries may also be separated by commas.
	BearerKeysEnv string `json:"bearer_keys_env,omitempty"`

	// AllowCIDRs, when non-empty, admits only callers whose address (see
	// ServerConfig.TrustedProxies) is in one of these prefixes. A bare address
	// means that single address.
	AllowCIDRs []string `json:"allow_cidrs,omitempty"`
}

// RateLimitConfig bounds requests per caller address with two token
// buckets. For each field, zero means the default and a negative value turns
// that limit off. IPv6 callers are grouped by /64.
type RateLimitConfig struct {
	// RequestsPerSecond refills the request bucket (default 1).
	RequestsPerSecond float64 `json:"requests_per_second,omitempty"`
	// RequestBurst is the request bucket's size (default 60).
	RequestBurst int `json:"request_burst,omitempty"`
	// FailuresPerMinute refills the refusal bucket (default 10).
	FailuresPerMinute float64 `json:"failures_per_minute,omitempty"`
	// FailureBurst is the refusal bucket's size (default 10).
	FailureBurst int `json:"failure_burst,omitempty"`
}

// Duration is a time.Duration that reads from JSON as a Go duration string
// such as "40m".
type Duration time.Duration

// UnmarshalJSON accepts a duration string ("40m", "1h30m").
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"40m\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// LoadServerConfig reads, decodes and checks the configuration file at path. It
// checks the structure only (see ServerConfig.Validate); key files and
// environment variables are read by NewServer.
func LoadServerConfig(path string) (ServerConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return ServerConfig{}, fmt.Errorf("tokensvc: read config: %w", err)
	}
	cfg, err := ParseServerConfig(data)
	if err != nil {
		return ServerConfig{}, fmt.Errorf("tokensvc: config %s: %w", path, err)
	}
	cfg.Dir = filepath.Dir(path)
	return cfg, nil
}

// ParseServerConfig decodes a JSON configuration and validates its structure.
// Unknown fields are errors, so that a misspelt option is not silently
// ignored.
func ParseServerConfig(data []byte) (ServerConfig, error) {
	var cfg ServerConfig
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return ServerConfig{}, describeJSONError(data, err)
	}
	if dec.More() {
		return ServerConfig{}, errors.New("invalid JSON: more than one value in the file")
	}
	if err := cfg.Validate(); err != nil {
		return ServerConfig{}, err
	}
	return cfg, nil
}

// describeJSONError adds a line and column to syntax errors.
func describeJSONError(data []byte, err error) error {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		line, col := lineCol(data, syn.Offset)
		return fmt.Errorf("invalid JSON at line %d, column %d: %w", line, col, err)
	}
	switch {
	case errors.Is(err, io.EOF):
		return errors.New("invalid JSON: the file is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("invalid JSON: the file ends inside a value (an unclosed { or [?)")
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		line, col := lineCol(data, typ.Offset)
		return fmt.Errorf("invalid JSON at line %d, column %d: field %q: %w", line, col, typ.Field, err)
	}
	return fmt.Errorf("invalid JSON: %w", err)
}

func lineCol(data []byte, offset int64) (line, col int) {
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	before := data[:offset]
	line = bytes.Count(before, []byte("\n")) + 1
	// offset counts the offending byte too.
	col = max(int(offset)-bytes.LastIndexByte(before, '\n')-1, 1)
	return line, col
}

// Validate checks everything that can be checked without reading key files
// or the environment: app names, kinds, required fields, CIDRs, bounds.
func (c *ServerConfig) Validate() error {
	if len(c.Apps) == 0 {
		return errors.New("no apps configured: \"apps\" must list at least one app")
	}
	if err := c.Auth.validate(); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	if _, err := parsePrefixes(c.TrustedProxies); err != nil {
		return fmt.Errorf("trusted_proxies: %w", err)
	}
	seen := make(map[string]int, len(c.Apps))
	for i := range c.Apps {
		a := &c.Apps[i]
		if err := a.validate(); err != nil {
			if a.Name != "" {
				return fmt.Errorf("app %q: %w", a.Name, err)
			}
			return fmt.Errorf("apps[%d]: %w", i, err)
		}
		if j, dup := seen[a.Name]; dup {
			return fmt.Errorf("duplicate app name %q (apps[%d] and apps[%d])", a.Name, j, i)
		}
		seen[a.Name] = i
	}
	return nil
}

func (a *AppConfig) validate() error {
	if !appNamePattern.MatchString(a.Name) {
		return fmt.Errorf("bad name %q: want 1-128 characters from A-Z a-z 0-9 . _ -, starting with a letter or digit", a.Name)
	}
	switch a.Kind {
	case KindFCM:
		if err := exactlyOne("service_account_file", a.ServiceAccountFile, "service_account_env", a.ServiceAccountEnv); err != nil {
			return err
		}
		if a.KeyFile != "" || a.KeyEnv != "" || a.KeyID != "" || a.TeamID != "" || a.Topic != "" || a.Environment != "" || a.JWTReuseWindow != 0 {
			return errors.New("kind \"fcm\" takes no APNs fields (key_file, key_env, key_id, team_id, topic, environment, jwt_reuse_window)")
		}
	case KindAPNs:
		if err := exactlyOne("key_file", a.KeyFile, "key_env", a.KeyEnv); err != nil {
			return err
		}
		if a.ServiceAccountFile != "" || a.ServiceAccountEnv != "" || a.ProjectID != "" {
			return errors.New("kind \"apns\" takes no FCM fields (service_account_file, service_account_env, project_id)")
		}
		if !appleIDPattern.MatchString(a.KeyID) {
			return fmt.Errorf("key_id %q: want the 10-character key id Apple shows for the key", a.KeyID)
		}
		if !appleIDPattern.MatchString(a.TeamID) {
			return fmt.Errorf("team_id %q: want the 10-character Apple team id", a.TeamID)
		}
		if a.Topic == "" {
			return errors.New("topic is required for apns apps (the app's bundle id)")
		}
		switch a.Environment {
		case "", EnvironmentProduction, EnvironmentDevelopment:
		default:
			return fmt.Errorf("environment %q: want %q or %q", a.Environment, EnvironmentProduction, EnvironmentDevelopment)
		}
		if w := time.Duration(a.JWTReuseWindow); w != 0 && (w < MinAPNsReuseWindow || w > MaxAPNsReuseWindow) {
			return fmt.Errorf("jwt_reuse_window %v: must be between %v and %v (Apple refuses JWTs older than 60m and token changes more often than every 20m)", w, MinAPNsReuseWindow, MaxAPNsReuseWindow)
		}
	case "":
		return errors.New("kind is required: \"fcm\" or \"apns\"")
	default:
		return fmt.Errorf("unknown kind %q: want \"fcm\" or \"apns\"", a.Kind)
	}
	if err := a.Auth.validate(); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	return nil
}

// appleIDPattern matches Apple key ids and team ids.
var appleIDPattern = regexp.MustCompile(`^[A-Z0-9]{10}$`)

func (a *AuthConfig) validate() error {
	if a == nil {
		return nil
	}
	if a.HMACSecretFile != "" && a.HMACSecretEnv != "" {
		return errors.New("set only one of hmac_secret_file and hmac_secret_env")
	}
	if a.BearerKeysFile != "" && a.BearerKeysEnv != "" {
		return errors.New("set only one of bearer_keys_file and bearer_keys_env")
	}
	if _, err := parsePrefixes(a.AllowCIDRs); err != nil {
		return fmt.Errorf("allow_cidrs: %w", err)
	}
	return nil
}

func exactlyOne(nameA, a, nameB, b string) error {
	switch {
	case a == "" && b == "":
		return fmt.Errorf("%s or %s is required", nameA, nameB)
	case a != "" && b != "":
		return fmt.Errorf("set only one of %s and %s", nameA, nameB)
	}
	return nil
}

// parsePrefixes parses CIDRs; a bare address is a single-address prefix.
func parsePrefixes(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		s = strings.TrimSpace(s)
		if !strings.Contains(s, "/") {
			addr, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("%q is neither a CIDR nor an address", s)
			}
			addr = addr.Unmap()
			out = append(out, netip.PrefixFrom(addr, addr.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR: %w", s, err)
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// readSecret reads a secret from a file (resolved against dir) or an
// environment variable; fileField and envField name the config fields in
// error messages.
func readSecret(dir, file, env string, getenv func(string) string, fileField, envField string) ([]byte, error) {
	if file != "" {
		path := resolvePath(dir, file)
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", fileField, err)
		}
		return b, nil
	}
	v := getenv(env)
	if v == "" {
		return nil, fmt.Errorf("%s: environment variable %s is empty or unset", envField, env)
	}
	return []byte(v), nil
}

func resolvePath(dir, p string) string {
	if filepath.IsAbs(p) || dir == "" {
		return p
	}
	return filepath.Join(dir, p)
}
