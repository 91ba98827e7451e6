// Package testclient is the reference Rewind terminal: a small, complete client of the broker's
// WebSocket session (PROTOCOL.md §1–7) that tests drive and that terminal authors can read
// to copy behaviour from, plus the load scenario behind `testclient load`.
//
// # Session
//
//	c, err := testclient.Dial(ctx, testclient.Config{URL: "ws://127.0.0.1:4000/rewind", ID: 262000101, Password: "pw"})
//	if err != nil {
//		var be *protocol.BrokerError // refused: errors.As finds the BROKER_ERROR, CloseCode the close code
//		...
//	}
//	defer c.Close()
//	err = c.SendText(ctx, 262000201, "hello")
//	d, err := c.Recv(ctx) // MESSAGE_STATUS, BROKER_ERROR, MESSAGE_TEXT, ...
//
// Dial performs the whole handshake (hello KEEP_ALIVE with VersionData, CHALLENGE, AUTHENTICATION,
// empty KEEP_ALIVE). After it a Client runs two goroutines until the session ends:
//
//   - the reader, the only one that reads the socket. It hands datagrams to a bounded receive
//     queue that Recv drains, answers waiters (Subscribe, Unsubscribe, KeepAliveNow) and swallows
//     the broker's keep-alive echoes. It never writes.
//   - the writer loop, with one timer: a KEEP_ALIVE every Config.KeepAlive, and the automatic
//     DELIVERY_ACK and MESSAGE_STATUS answers (Config.AutoAck, Config.AutoStatus) that the reader
//     asks for. Acknowledgements are coalesced: the loop always acknowledges the highest sequence
//     seen, which is what a cumulative DELIVERY_ACK means.
//
// Datagrams a caller sends (Send and friends) are written from the caller's goroutine; a mutex
// keeps the terminal's sequence counter and the order on the wire the same.
//
// # Push channel
//
// Attach, Idle and Detach send TERMINAL_ATTACH, TERMINAL_IDLE and TERMINAL_DETACH (PROTOCOL.md §4)
// and wait for the broker's empty answer or its BROKER_ERROR; EncodeAttach builds the legacy or
// MessagePack attach on its own. GenerateKeys makes a phone's Web Push keys, whose Open reads
// sealed push bodies (§7). Phone (phone.go) puts it together: a terminal that goes idle, is
// woken by a push from the fake providers of package pushsim, reconnects with TERMINAL_WAKEUP
// first (Config.Wakeup) and receives its stored deliveries.
//
// # How a session ends
//
// Done is closed when the connection ended; Err and, once the queue is drained, Recv return why:
// a *SessionError carrying the WebSocket close code (CloseCode), whether the broker sent a CLOSE
// datagram first, and the BROKER_ERROR that immediately preceded the end, if any; or ErrClosed
// after Close or Abort.
package testclient
