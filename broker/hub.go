package broker

import "sync"

// hub indexes the live, authenticated sessions: by terminal id, by owning DMR user id and by
// subscribed talkgroup. It only finds sessions; it never writes to one while holding its lock.
type hub struct {
	mu     sync.RWMutex
	byID   map[uint32]*session
	byUser map[uint32][]*session
	groups map[uint32]map[*session]struct{}
}

func newHub() *hub {
	return &hub{
		byID:   make(map[uint32]*session),
		byUser: make(map[uint32][]*session),
		groups: make(map[uint32]map[*session]struct{}),
	}
}

// add makes s the live session of its terminal and returns the session it replaced, if any.
func (h *hub) add(s *session) (replaced *session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if old := h.byID[s.terminal]; old != nil {
		h.removeLocked(old)
		replaced = old
	}
	h.byID[s.terminal] = s
	h.byUser[s.user] = append(h.byUser[s.user], s)
	return replaced
}

// remove forgets s if it is still indexed (a replaced session already is not).
func (h *hub) remove(s *session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.byID[s.terminal] == s {
		h.removeLocked(s)
	}
}

func (h *hub) removeLocked(s *session) {
	delete(h.byID, s.terminal)
	list := h.byUser[s.user]
	for i, x := range list {
		if x == s {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(h.byUser, s.user)
	} else {
		h.byUser[s.user] = list
	}
	for tg := range s.groups {
		h.unsubscribeLocked(s, tg)
	}
}

// session returns the live session of a terminal.
func (h *hub) session(terminal uint32) *session {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.byID[terminal]
}

// active reports whether terminal has a session in the active state: datagrams for it go over
// its socket, and it needs no push.
func (h *hub) active(terminal uint32) bool {
	s := h.session(terminal)
	return s != nil && s.state.Load() == stateActive
}

// destination returns the live sessions a private datagram for dest reaches: the terminal with
// that id and every terminal owned by the DMR user with that id. The result is a fresh slice.
func (h *hub) destination(dest uint32) []*session {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var out []*session
	if s := h.byID[dest]; s != nil {
		out = append(out, s)
	}
	for _, s := range h.byUser[dest] {
		if s.terminal != dest {
			out = append(out, s)
		}
	}
	return out
}

// subscribe adds talkgroup tg to s. It fails when s already has max subscriptions.
func (h *hub) subscribe(s *session, tg uint32, max int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := s.groups[tg]; ok {
		return true
	}
	if len(s.groups) >= max {
		return false
	}
	if s.groups == nil {
		s.groups = make(map[uint32]struct{})
	}
	s.groups[tg] = struct{}{}
	members := h.groups[tg]
	if members == nil {
		members = make(map[*session]struct{})
		h.groups[tg] = members
	}
	members[s] = struct{}{}
	return true
}

// unsubscribe removes tg from s; tg 0 removes every subscription.
func (h *hub) unsubscribe(s *session, tg uint32) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if tg == 0 {
		for g := range s.groups {
			h.unsubscribeLocked(s, g)
		}
		return
	}
	h.unsubscribeLocked(s, tg)
}

func (h *hub) unsubscribeLocked(s *session, tg uint32) {
	delete(s.groups, tg)
	if members := h.groups[tg]; members != nil {
		delete(members, s)
		if len(members) == 0 {
			delete(h.groups, tg)
		}
	}
}

// members returns the sessions subscribed to tg, except one (the sender).
func (h *hub) members(tg uint32, except *session) []*session {
	h.mu.RLock()
	defer h.mu.RUnlock()
	members := h.groups[tg]
	out := make([]*session, 0, len(members))
	for s := range members {
		if s != except {
			out = append(out, s)
		}
	}
	return out
}

// all returns every live session.
func (h *hub) all() []*session {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]*session, 0, len(h.byID))
	for _, s := range h.byID {
		out = append(out, s)
	}
	return out
}

// groupsOf returns a copy of s's subscriptions.
func (h *hub) groupsOf(s *session) []uint32 {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]uint32, 0, len(s.groups))
	for g := range s.groups {
		out = append(out, g)
	}
	return out
}
