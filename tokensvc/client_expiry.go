package tokensvc

import (
	"net/url"
	"sort"
	"time"
)

// CredentialExpiry is when the credentials a Client holds for one token-service host expire.
type CredentialExpiry struct {
	Host    string    // the token service's host (never the path or query: those may be secret)
	Expires time.Time // the soonest expiry among that host's cached credentials
}

// Expiries reports, per token-service host, the soonest expiry of the credentials held in
// memory, for metrics ("seconds until cached credentials expire"). Hosts are few (one per
// vendor), so they make acceptable metric labels; URLs would not.
func (c *Client) Expiries() []CredentialExpiry {
	c.mu.Lock()
	soonest := make(map[string]time.Time)
	for raw, e := range c.entries {
		if !e.have {
			continue
		}
		u, err := url.Parse(raw)
		if err != nil {
			continue
		}
		if t, ok := soonest[u.Host]; !ok || e.expiry.Before(t) {
			soonest[u.Host] = e.expiry
		}
	}
	c.mu.Unlock()
	out := make([]CredentialExpiry, 0, len(soonest))
	for h, t := range soonest {
		out = append(out, CredentialExpiry{Host: h, Expires: t})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Host < out[j].Host })
	return out
}
