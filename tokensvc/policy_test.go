package tokensvc

import (
	"errors"
	"strings"
	"testing"
)

func TestPolicyCheck(t *testing.T) {
	vendor := URLPolicy{AllowedHosts: []string{"vendor.example", "*.example.com"}}
	dev := URLPolicy{AllowInsecure: true}
	tests := []struct {
		name   string
		policy URLPolicy
		url    string
		ok     bool
		reason string // substring of the error
	}{
		{"https allowed host with query", vendor, "https://vendor.example/token?code=abc", true, ""},
		{"host case and port ignored", vendor, "https://VENDOR.example:8443/token", true, ""},
		{"wildcard subdomain", vendor, "https://tokens.example.com/t", true, ""},
		{"wildcard deep subdomain", vendor, "https://a.b.example.com/t", true, ""},
		{"wildcard excludes apex", vendor, "https://example.com/t", false, "not in the vendor allow-list"},
		{"wildcard is not a suffix match", vendor, "https://evilexample.com/t", false, "not in the vendor allow-list"},
		{"other host", vendor, "https://evil.example/x", false, "not in the vendor allow-list"},
		{"allowed host as suffix of another", vendor, "https://vendor.example.evil.example/x", false, "not in the vendor allow-list"},
		{"http", vendor, "http://vendor.example/x", false, "scheme http"},
		{"http loopback", vendor, "http://127.0.0.1/x", false, "scheme http"},
		{"http private", vendor, "http://10.1.2.3/x", false, "scheme http"},
		{"https private", vendor, "https://10.1.2.3/x", false, "loopback, private"},
		{"https 172.16/12", vendor, "https://172.20.0.1/x", false, "loopback, private"},
		{"https 192.168/16", vendor, "https://192.168.1.1/x", false, "loopback, private"},
		{"https CGNAT", vendor, "https://100.64.0.1/x", false, "loopback, private"},
		{"https link-local metadata", vendor, "https://169.254.169.254/latest", false, "loopback, private"},
		{"https unspecified", vendor, "https://0.0.0.0/x", false, "loopback, private"},
		{"https loopback v6", vendor, "https://[::1]/x", false, "loopback, private"},
		{"https ULA v6", vendor, "https://[fd00::1]/x", false, "loopback, private"},
		{"https v4-mapped loopback", vendor, "https://[::ffff:127.0.0.1]/x", false, "loopback, private"},
		{"https link-local v6 with zone", vendor, "https://[fe80::1%25eth0]/x", false, "loopback, private"},
		{"https NAT64 of private", vendor, "https://[64:ff9b::a01:203]/x", false, "loopback, private"},
		{"file", vendor, "file:///etc/passwd", false, `scheme "file"`},
		{"ftp", vendor, "ftp://vendor.example/x", false, `scheme "ftp"`},
		{"no scheme", vendor, "vendor.example/x", false, "no scheme"},
		{"opaque", vendor, "https:vendor.example", false, "no host"},
		{"userinfo", vendor, "https://user:pw@vendor.example/x", false, "userinfo"},
		{"user only", vendor, "https://user@vendor.example/x", false, "userinfo"},
		{"fragment", vendor, "https://vendor.example/x#frag", false, "fragment"},
		{"empty fragment", vendor, "https://vendor.example/x#", false, "fragment"},
		{"no host", vendor, "https:///x", false, "no host"},
		{"too long", vendor, "https://vendor.example/" + strings.Repeat("a", MaxURLLength), false, "limit of 2048"},
		{"unparseable", vendor, "https://vendor.example/%zz", false, "not a valid URL"},
		{"empty allow-list", URLPolicy{}, "https://vendor.example/x", false, "no vendor hosts allowed"},
		{"dev any host", dev, "http://127.0.0.1:8080/x", true, ""},
		{"dev private https", dev, "https://10.1.2.3/x", true, ""},
		{"dev still no file", dev, "file:///etc/passwd", false, `scheme "file"`},
		{"dev still no userinfo", dev, "http://u:p@127.0.0.1/x", false, "userinfo"},
		{"dev with allow-list", URLPolicy{AllowedHosts: []string{"localhost"}, AllowInsecure: true}, "http://evil.example/x", false, "not in the vendor allow-list"},
		{"public IP literal in list", URLPolicy{AllowedHosts: []string{"203.0.113.7"}}, "https://203.0.113.7/x", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := tt.policy.Check(tt.url)
			if tt.ok {
				if err != nil || u == nil {
					t.Fatalf("Check(%q) = %v, %v; want accepted", tt.url, u, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Check(%q) accepted; want refused (%s)", tt.url, tt.reason)
			}
			if !errors.Is(err, ErrURLPolicy) {
				t.Errorf("error %v does not wrap ErrURLPolicy", err)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("error %q does not say %q", err, tt.reason)
			}
			for _, secret := range []string{"pw@", "code=abc", "#frag"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q quotes %q", err, secret)
				}
			}
		})
	}
}

func TestPolicyDialControl(t *testing.T) {
	strict := URLPolicy{AllowedHosts: []string{"vendor.example"}}
	for _, addr := range []string{"127.0.0.1:443", "[::1]:443", "10.0.0.5:443", "192.168.0.1:443",
		"172.31.255.255:443", "100.100.100.100:443", "169.254.169.254:80", "[fe80::1%eth0]:443",
		"[fc00::1]:443", "0.0.0.0:443", "[::ffff:10.0.0.1]:443", "not-an-address"} {
		err := strict.DialControl("tcp", addr, nil)
		if !errors.Is(err, ErrURLPolicy) {
			t.Errorf("DialControl(%s) = %v, want ErrURLPolicy", addr, err)
		}
	}
	for _, addr := range []string{"203.0.113.7:443", "[2001:4860:4860::8888]:443", "8.8.8.8:443"} {
		if err := strict.DialControl("tcp", addr, nil); err != nil {
			t.Errorf("DialControl(%s) = %v, want allowed", addr, err)
		}
	}
	dev := URLPolicy{AllowInsecure: true}
	if err := dev.DialControl("tcp", "127.0.0.1:80", nil); err != nil {
		t.Errorf("AllowInsecure DialControl(loopback) = %v", err)
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://vendor.example/token?code=abc", "https://vendor.example/token"},
		{"https://user:pw@vendor.example/token?code=abc#x", "https://vendor.example/token"},
		{"https://vendor.example/token?", "https://vendor.example/token"},
		{"https://vendor.example:8443/a/b", "https://vendor.example:8443/a/b"},
		{"https://u:p@vendor.example/%zz?code=abc", "https://vendor.example/%zz"}, // unparseable
		{"mailto:someone?subject=secret", "mailto:[opaque]"},
	}
	for _, tt := range tests {
		if got := Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
