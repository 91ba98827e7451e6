package pushsim

import (
	"context"
	"fmt"
)

// Providers runs a fake FCM and a fake APNs that share one journal: Pushes, Next and OnPush see
// the pushes of both, which is what a simulated fleet of phones of both kinds needs.
type Providers struct {
	FCM  *FCM
	APNs *APNs

	journal *journal
}

// New starts both fake providers. Close them with Close.
func New() *Providers {
	j := newJournal()
	return &Providers{FCM: newFCM(j, false), APNs: newAPNs(j, false), journal: j}
}

// RegisterDevice mints a device token on the provider of platform, bound to target: the FCM
// project, or the APNs topic (bundle id). It panics on any other platform.
func (p *Providers) RegisterDevice(platform Platform, target string) (deviceToken string) {
	switch platform {
	case PlatformFCM:
		return p.FCM.RegisterDevice(target)
	case PlatformAPNs:
		return p.APNs.RegisterDevice(target)
	}
	panic(fmt.Sprintf("pushsim: unknown platform %q", platform))
}

// Unregister unregisters deviceToken on whichever provider issued it (see FCM.Unregister) and
// reports whether one did.
func (p *Providers) Unregister(deviceToken string) bool {
	return p.FCM.Unregister(deviceToken) || p.APNs.Unregister(deviceToken)
}

// Pushes returns every push either provider accepted, in order.
func (p *Providers) Pushes() []Push { return p.journal.all() }

// OnPush sets the handler for pushes to deviceToken on either provider; see FCM.OnPush.
func (p *Providers) OnPush(deviceToken string, handler func(Push)) {
	p.journal.onPush(deviceToken, handler)
}

// Next returns the oldest push of either provider that Next has not returned yet; see FCM.Next.
func (p *Providers) Next(ctx context.Context) (Push, error) { return p.journal.nextPush(ctx) }

// Settle waits until every push accepted so far has been handed to its device's handler and
// the handlers have returned. Call it while no push is being sent (Close, by contrast, drops
// pushes still queued for a handler).
func (p *Providers) Settle() { p.journal.settle() }

// Close stops both servers, then the push handlers, and waits for them.
func (p *Providers) Close() {
	p.FCM.Close()
	p.APNs.Close()
	p.journal.close()
}
