package tokensvc

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// ErrURLPolicy is wrapped by every refusal of a token-service URL, whether by
// URLPolicy.Check before a request or by URLPolicy.DialControl when a host
// name resolves to an address the policy forbids.
var ErrURLPolicy = errors.New("token-service URL refused by policy")

// MaxURLLength bounds a token-service URL. A terminal supplies the URL, so
// it is untrusted input; 2048 bytes is the common limit of browsers and
// proxies, far above any real token endpoint.
const MaxURLLength = 2048

// maxRedactedLen bounds the redacted URL quoted in an error or log line, so
// that a hostile URL cannot flood logs.
const maxRedactedLen = 256

// URLPolicy decides which token-service URLs the broker may call. Terminals
// name the URL in TERMINAL_ATTACH, so without a policy any terminal could
// make the broker send requests (and bearer keys) to arbitrary hosts,
// including services on the broker's own network. The zero value refuses
// every URL.
type URLPolicy struct {
	// AllowedHosts lists the vendor hosts the broker may call: an exact
	// host name ("tokens.vendor.example") or a wildcard for every subdomain
	// ("*.vendor.example", which does not match "vendor.example" itself).
	// Matching ignores case and the port. Empty means no host is allowed,
	// unless AllowInsecure is set, in which case every host is.
	AllowedHosts []string
	// AllowInsecure is for development only: it permits http URLs and
	// loopback, private, link-local and CGNAT addresses, both as literals in
	// the URL and at dial time.
	AllowInsecure bool
}

// Check parses raw and reports whether the broker may call it. It returns
// the parsed URL, or an error wrapping ErrURLPolicy that names the URL
// without its query string or userinfo and says what is wrong.
//
// Refused: URLs longer than MaxURLLength; schemes other than https (http is
// accepted with AllowInsecure); userinfo; fragments; an empty host; a host
// not in AllowedHosts; and literal IP addresses that are loopback, private
// (10/8, 172.16/12, 192.168/16, fc00::/7), link-local, multicast,
// unspecified, "this network" (0/8), broadcast or CGNAT (100.64/10), unless
// AllowInsecure. Host names are checked against those ranges at dial time by
// DialControl.
func (p URLPolicy) Check(raw string) (*url.URL, error) {
	refuse := func(format string, args ...any) (*url.URL, error) {
		return nil, fmt.Errorf("%w: %s: %s", ErrURLPolicy, shortRedact(raw), fmt.Sprintf(format, args...))
	}
	if len(raw) > MaxURLLength {
		return refuse("URL is %d bytes long, more than the limit of %d", len(raw), MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return refuse("not a valid URL")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !p.AllowInsecure {
			return refuse("scheme http is not allowed; token services must use https")
		}
	case "":
		return refuse("URL has no scheme; want https://host/path")
	default:
		return refuse("scheme %q is not allowed; token services must use https", u.Scheme)
	}
	if u.Opaque != "" {
		return refuse("URL has no host; want https://host/path")
	}
	if u.User != nil {
		return refuse("URL must not contain userinfo (user:password@); use a bearer key instead")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return refuse("URL must not contain a fragment (#)")
	}
	host := normalizeHost(u.Hostname())
	if host == "" {
		return refuse("URL has no host")
	}
	if addr, err := netip.ParseAddr(host); err == nil && !p.AllowInsecure && forbiddenAddr(addr) {
		return refuse("address %s is loopback, private, link-local or otherwise internal; such addresses are allowed only in development (AllowInsecure)", addr)
	}
	if len(p.AllowedHosts) == 0 {
		if p.AllowInsecure {
			return u, nil
		}
		return refuse("no vendor hosts allowed; add the vendor's host to the allow-list")
	}
	if !p.hostAllowed(host) {
		return refuse("host %q is not in the vendor allow-list", host)
	}
	return u, nil
}

// hostAllowed matches a normalized host name against AllowedHosts.
func (p URLPolicy) hostAllowed(host string) bool {
	for _, pattern := range p.AllowedHosts {
		pattern = normalizeHost(pattern)
		if suffix, ok := strings.CutPrefix(pattern, "*."); ok {
			if strings.HasSuffix(host, "."+suffix) {
				return true
			}
			continue
		}
		if pattern != "" && host == pattern {
			return true
		}
	}
	return false
}

// normalizeHost lowercases a host name and drops one trailing dot, so that
// "Vendor.Example." and "vendor.example" compare equal.
func normalizeHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// DialControl is a net.Dialer Control function that refuses connections to
// the addresses Check refuses as literals (loopback, private, link-local,
// CGNAT, …), unless AllowInsecure. It closes the gap Check cannot: a host
// name in the allow-list whose DNS answer points inside the broker's
// network. The client's default transport uses it; a custom
// ClientConfig.HTTPClient should too. The error wraps ErrURLPolicy.
func (p URLPolicy) DialControl(network, address string, _ syscall.RawConn) error {
	if p.AllowInsecure {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot check dial address %q", ErrURLPolicy, address)
	}
	if forbiddenAddr(ap.Addr()) {
		return fmt.Errorf("%w: %s resolves to internal address %s", ErrURLPolicy, network, ap.Addr())
	}
	return nil
}

// Address ranges refused besides those netip.Addr's predicates cover
// (loopback, private, link-local, multicast, unspecified).
var (
	cgnatPrefix       = netip.MustParsePrefix("100.64.0.0/10") // RFC 6598 carrier-grade NAT
	thisNetworkPrefix = netip.MustParsePrefix("0.0.0.0/8")     // RFC 1122 "this network"
	broadcastAddr     = netip.MustParseAddr("255.255.255.255") // limited broadcast
	nat64Prefix       = netip.MustParsePrefix("64:ff9b::/96")  // RFC 6052: embeds an IPv4 address
	sixToFourPrefix   = netip.MustParsePrefix("2002::/16")     // RFC 3056: embeds an IPv4 address
	siteLocalPrefix   = netip.MustParsePrefix("fec0::/10")     // deprecated site-local
	ipv4CompatPrefix  = netip.MustParsePrefix("::/96")         // deprecated IPv4-compatible
	documentationV6   = netip.MustParsePrefix("2001:db8::/32") // never routable
	benchmarkPrefix   = netip.MustParsePrefix("198.18.0.0/15") // RFC 2544 benchmarking
	ietfProtoPrefix   = netip.MustParsePrefix("192.0.0.0/24")  // RFC 6890 IETF protocol assignments
	reservedPrefix    = netip.MustParsePrefix("240.0.0.0/4")   // reserved, never routable
)

// forbiddenAddr reports whether a is an address no production token
// service has: loopback, private, link-local, multicast, unspecified, CGNAT
// or another internal or unroutable range, including IPv6 forms that embed
// such an IPv4 address.
func forbiddenAddr(a netip.Addr) bool {
	a = a.WithZone("").Unmap()
	if a.Is6() {
		switch {
		case nat64Prefix.Contains(a):
			b := a.As16()
			return forbiddenAddr(netip.AddrFrom4([4]byte(b[12:16])))
		case sixToFourPrefix.Contains(a):
			b := a.As16()
			return forbiddenAddr(netip.AddrFrom4([4]byte(b[2:6])))
		case ipv4CompatPrefix.Contains(a), siteLocalPrefix.Contains(a), documentationV6.Contains(a):
			return true
		}
	}
	if a.Is4() && (cgnatPrefix.Contains(a) || thisNetworkPrefix.Contains(a) || a == broadcastAddr ||
		benchmarkPrefix.Contains(a) || ietfProtoPrefix.Contains(a) || reservedPrefix.Contains(a)) {
		return true
	}
	return a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified()
}

// Redact returns u without its query string, fragment and userinfo, for
// logs and error messages: token-service URLs carry their secrets (such as a
// verification code) in the query. A string that does not parse as a URL is
// cut at the first '?' or '#' and stripped of anything before an '@' in its
// authority.
func Redact(u string) string {
	if pu, err := url.Parse(u); err == nil {
		pu.User = nil
		pu.RawQuery = ""
		pu.ForceQuery = false
		pu.Fragment = ""
		pu.RawFragment = ""
		if pu.Opaque != "" {
			// "scheme:opaque?query" — the opaque part may itself be a secret.
			return pu.Scheme + ":[opaque]"
		}
		return pu.String()
	}
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i]
	}
	rest, scheme := u, ""
	if i := strings.Index(u, "://"); i >= 0 {
		scheme, rest = u[:i+3], u[i+3:]
	}
	authority, path := rest, ""
	if i := strings.Index(rest, "/"); i >= 0 {
		authority, path = rest[:i], rest[i:]
	}
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		authority = authority[i+1:]
	}
	return scheme + authority + path
}

// shortRedact is Redact bounded to maxRedactedLen bytes and stripped of
// control characters, for quoting in errors and logs.
func shortRedact(u string) string {
	r := strings.Map(func(c rune) rune {
		if c < 0x20 || c == 0x7f {
			return -1
		}
		return c
	}, Redact(u))
	if len(r) > maxRedactedLen {
		r = r[:maxRedactedLen] + "…"
	}
	return r
}
