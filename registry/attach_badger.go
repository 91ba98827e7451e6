package registry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// getAttach reads the attach of terminal in txn.
func getAttach(txn *badger.Txn, terminal uint32) (Attach, error) {
	item, err := txn.Get(attachKey(terminal))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return Attach{}, ErrNotFound
	}
	if err != nil {
		return Attach{}, err
	}
	var a Attach
	err = item.Value(func(v []byte) (err error) {
		a, err = decodeAttach(terminal, v)
		return err
	})
	return a, err
}

// putAttachWrite encodes a as the write that stores it.
func putAttachWrite(a Attach) ([]write, error) {
	v, err := encodeAttach(a)
	if err != nil {
		return nil, err
	}
	return []write{{key: attachKey(a.Terminal), value: v}}, nil
}

// PutAttach implements Attaches. The record is encoded on the caller's
// goroutine; the committer checks that the terminal exists in the same
// step that stores it, so a concurrent DeleteTerminal either runs first
// (ErrNotFound) or removes the new attach with the terminal.
func (b *Badger) PutAttach(ctx context.Context, a Attach) error {
	if err := validateAttach(a); err != nil {
		return err
	}
	now := fromNanos(nanos(b.now()))
	a.Attached, a.TokenUpdated = now, now
	a.Invalid, a.InvalidReason, a.InvalidAt = false, "", time.Time{}
	ws, err := putAttachWrite(a)
	if err != nil {
		return wrap("put attach", err)
	}
	err = b.submit(ctx, func(txn *badger.Txn) ([]write, error) {
		if _, err := txn.Get(terminalKey(a.Terminal)); errors.Is(err, badger.ErrKeyNotFound) {
			return nil, ErrNotFound
		} else if err != nil {
			return nil, err
		}
		return ws, nil
	})
	return wrap(fmt.Sprintf("put attach of terminal %d", a.Terminal), err)
}

// GetAttach implements Attaches.
func (b *Badger) GetAttach(ctx context.Context, terminal uint32) (Attach, error) {
	if terminal == 0 {
		return Attach{}, validOutboxTerminal(terminal)
	}
	var a Attach
	err := b.view(ctx, func(txn *badger.Txn) (err error) {
		a, err = getAttach(txn, terminal)
		return err
	})
	return a, wrap(fmt.Sprintf("get attach of terminal %d", terminal), err)
}

// DeleteAttach implements Attaches.
func (b *Badger) DeleteAttach(ctx context.Context, terminal uint32) error {
	if terminal == 0 {
		return validOutboxTerminal(terminal)
	}
	err := b.submit(ctx, func(txn *badger.Txn) ([]write, error) {
		if _, err := txn.Get(attachKey(terminal)); errors.Is(err, badger.ErrKeyNotFound) {
			return nil, ErrNotFound
		} else if err != nil {
			return nil, err
		}
		return []write{{key: attachKey(terminal), del: true}}, nil
	})
	return wrap(fmt.Sprintf("delete attach of terminal %d", terminal), err)
}

// MarkAttachInvalid implements Attaches. A zero at stands for the store's
// current time.
func (b *Badger) MarkAttachInvalid(ctx context.Context, terminal uint32, token string, reason string, at time.Time) (changed bool, err error) {
	if terminal == 0 {
		return false, validOutboxTerminal(terminal)
	}
	if at.IsZero() {
		at = b.now()
	}
	reason = truncateReason(reason)
	err = b.submit(ctx, func(txn *badger.Txn) ([]write, error) {
		changed = false // prepare runs once, but say so
		a, err := getAttach(txn, terminal)
		if errors.Is(err, ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if a.Invalid || a.Token != token {
			return nil, nil
		}
		a.Invalid, a.InvalidReason, a.InvalidAt = true, reason, at
		ws, err := putAttachWrite(a)
		if err != nil {
			return nil, err
		}
		changed = true
		return ws, nil
	})
	if err != nil {
		return false, wrap(fmt.Sprintf("mark attach of terminal %d invalid", terminal), err)
	}
	return changed, nil
}

// SetPushToken implements Attaches.
func (b *Badger) SetPushToken(ctx context.Context, terminal uint32, token string, at time.Time) error {
	if terminal == 0 {
		return validOutboxTerminal(terminal)
	}
	if err := validatePushToken(terminal, token); err != nil {
		return err
	}
	err := b.submit(ctx, func(txn *badger.Txn) ([]write, error) {
		a, err := getAttach(txn, terminal)
		if err != nil {
			return nil, err
		}
		a.Token, a.TokenUpdated = token, at
		a.Invalid, a.InvalidReason, a.InvalidAt = false, "", time.Time{}
		return putAttachWrite(a)
	})
	return wrap(fmt.Sprintf("set push token of terminal %d", terminal), err)
}
