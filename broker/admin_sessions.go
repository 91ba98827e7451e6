package broker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/rewind-broker/rewind/registry"
)

// Session states and push platforms as the admin API names them.
const (
	stateOffline = "offline" // no live session
	platformNone = "none"    // no push attachment
)

// SessionItem is a live session in GET /v1/sessions: SessionInfo plus the push channel the
// terminal has attached.
type SessionItem struct {
	SessionInfo
	// Platform is the terminal's attach platform: fcm, apns, or none.
	Platform string `json:"platform"`
	// AttachInvalid is set when the provider said the attached device token is gone.
	AttachInvalid bool `json:"attach_invalid,omitempty"`
}

// sessionFilter is the ?state= and ?platform= of GET /v1/sessions; empty matches everything.
type sessionFilter struct {
	state    string // active, idle
	platform string // fcm, apns, none
}

func parseSessionFilter(r *http.Request) (sessionFilter, error) {
	q := r.URL.Query()
	f := sessionFilter{state: q.Get("state"), platform: q.Get("platform")}
	switch f.state {
	case "", "active", "idle":
	default:
		return f, fmt.Errorf("state %q: want active or idle", f.state)
	}
	switch f.platform {
	case "", registry.PlatformFCM, registry.PlatformAPNs, platformNone:
	default:
		return f, fmt.Errorf("platform %q: want fcm, apns or none", f.platform)
	}
	return f, nil
}

// apiSessions: GET /v1/sessions?limit=&after=&state=&platform=.
//
// The state filter is applied in memory. The platform needs one attach read per session, so
// a page reads at most limit attaches: the first limit sessions after "after" that pass the
// state filter. With a platform filter a page may therefore hold fewer than limit items (even
// none) and still have a next.
func (srv *Server) apiSessions(w http.ResponseWriter, r *http.Request) {
	after, limit, err := page(r)
	if err != nil {
		apiError(w, http.StatusBadRequest, "%v", err)
		return
	}
	filter, err := parseSessionFilter(r)
	if err != nil {
		apiError(w, http.StatusBadRequest, "%v", err)
		return
	}
	all := srv.hub.all()
	slices.SortFunc(all, func(a, b *session) int { return cmpUint32(a.terminal, b.terminal) })
	i, _ := slices.BinarySearchFunc(all, after+1, func(s *session, id uint32) int { return cmpUint32(s.terminal, id) })
	if after == ^uint32(0) {
		i = len(all)
	}
	p := Page[SessionItem]{Items: []SessionItem{}}
	examined, last := 0, uint32(0)
	for _, s := range all[i:] {
		state := stateName(s.state.Load())
		if filter.state != "" && state != filter.state {
			continue
		}
		if examined == limit {
			p.Next = &last
			break
		}
		examined++
		last = s.terminal
		item := SessionItem{SessionInfo: srv.sessionInfo(s)}
		item.State = state // the value the filter saw
		a, ok, err := srv.attachOf(r.Context(), s.terminal)
		if err != nil {
			srv.storeError(w, err)
			return
		}
		item.Platform = platformNone
		if ok {
			item.Platform, item.AttachInvalid = a.Platform, a.Invalid
		}
		if filter.platform != "" && item.Platform != filter.platform {
			continue
		}
		p.Items = append(p.Items, item)
	}
	writeJSON(w, http.StatusOK, p)
}

func cmpUint32(a, b uint32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// sessionInfo describes s as Sessions does, for one session without listing them all.
func (srv *Server) sessionInfo(s *session) SessionInfo {
	return SessionInfo{
		Session:       s.id,
		Terminal:      s.terminal,
		User:          s.user,
		State:         stateName(s.state.Load()),
		Remote:        s.remote,
		Name:          s.name,
		Client:        s.desc,
		Since:         s.since.UTC(),
		LastKeepAlive: time.Unix(0, s.lastKeepAlive.Load()).UTC(),
		QueueDepth:    s.queueLen(),
		Talkgroups:    srv.hub.groupsOf(s),
	}
}

// liveSession returns the live session of terminal, if any.
func (srv *Server) liveSession(terminal uint32) *SessionInfo {
	s := srv.hub.session(terminal)
	if s == nil {
		return nil
	}
	info := srv.sessionInfo(s)
	return &info
}

// attaches is where push attachments are kept: the push store, or, on a broker without push,
// the registry if it keeps them (attaches stored by an earlier run stay visible and removable).
// Nil when there is none.
func (srv *Server) attaches() registry.Attaches {
	if srv.pushCfg.Store != nil {
		return srv.pushCfg.Store
	}
	if a, ok := srv.store.(registry.Attaches); ok {
		return a
	}
	return nil
}

// attachOf returns terminal's attach and whether it has one.
func (srv *Server) attachOf(ctx context.Context, terminal uint32) (registry.Attach, bool, error) {
	st := srv.attaches()
	if st == nil {
		return registry.Attach{}, false, nil
	}
	a, err := st.GetAttach(ctx, terminal)
	if errors.Is(err, registry.ErrNotFound) {
		return registry.Attach{}, false, nil
	}
	if err != nil {
		return registry.Attach{}, false, err
	}
	return a, true, nil
}
