// Package pushsim is a test double for the two push providers the broker talks to: FCM HTTP v1
// (Android) and APNs over HTTP/2 (iOS). It runs both as in-process HTTPS servers on loopback with a
// self-signed certificate, answers the way the real providers answer — the same status codes and
// the same JSON error bodies, so that firebase.google.com/go/v4's predicates
// (messaging.IsUnregistered, errorutils.IsUnauthenticated, ...) and sideshow/apns2's Response.Reason
// classify them exactly as they would in production — and hands every accepted push to a simulated
// terminal, which can then reconnect the way a phone does when it is woken.
//
// It is used by tests, by `broker --dev` and by load runs. It is never a production component:
// nothing is persisted, its certificate is httptest's, and its "tokens" are random strings.
//
// # Pieces
//
//   - [FCM]: POST /v1/projects/{project}/messages:send. Point the firebase SDK at URL()+"/v1"
//     (option.WithEndpoint) or a plain net/http sender at URL().
//   - [APNs]: POST /3/device/{token}, HTTP/2 only. Use URL() as apns2.Client.Host.
//   - [Providers]: both of them sharing one journal of pushes, for code that deals with both
//     platforms (RegisterDevice(platform, …), one OnPush, one Next).
//
// The fake vendor: Issue mints a bearer (an OAuth 2.0 access token for FCM, a provider JWT for
// APNs) that stays valid until Revoke. RegisterDevice mints a device token bound to an FCM project
// or an APNs topic; Unregister makes it answer as an uninstalled app would.
//
// # Observing pushes
//
// Every accepted push is recorded (Pushes), queued for Next, and handed to the handler set with
// OnPush for its device token. Handlers run outside the HTTP request: a handler that reconnects a
// terminal does not hold up the provider's answer, exactly as with a real phone. For one device
// the handler sees pushes one at a time, in the order they were accepted.
//
// # Faults
//
// FailNext makes the next n requests answer with a given Fault (a status, headers and a body that
// need not be JSON) before any validation, as an overloaded provider or a proxy in front of it
// would; Delay adds latency to every request. Requests counts every request, failed or not.
//
// Close stops the server, waits for running handlers and leaves no goroutine behind. Do not call
// Close from inside a push handler.
package pushsim
