package testclient_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/rewind-broker/rewind/protocol"
	"github.com/rewind-broker/rewind/testclient"
)

// A terminal that sends a text, reads its fate, and closes. (Compiled, not run: it needs a
// broker on 127.0.0.1:4000.)
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := testclient.Dial(ctx, testclient.Config{
		URL:        "ws://127.0.0.1:4000/rewind",
		ID:         262000101,
		Password:   "secret",
		AutoStatus: true, // answer received texts with "delivered"
		AutoAck:    true, // acknowledge stored deliveries
	})
	var be *protocol.BrokerError
	switch {
	case errors.As(err, &be):
		log.Fatalf("refused: %v (close %d)", be, testclient.CloseCode(err))
	case err != nil:
		log.Fatal(err)
	}
	defer c.Close()

	if err := c.SendText(ctx, 262000201, "hello"); err != nil {
		log.Fatal(err)
	}
	for {
		d, err := c.Recv(ctx)
		if err != nil {
			log.Fatal(err) // a *SessionError once the broker ended the session
		}
		fmt.Println(testclient.FormatDatagram(d))
		if d.Type == protocol.TypeMessageStatus || d.Type == protocol.TypeBrokerError {
			return
		}
	}
}

// KeepAliveNow is a barrier: once the broker echoed it, everything sent before was handled, so
// a test can assert that nothing else arrived.
func ExampleClient_KeepAliveNow() {
	ctx := context.Background()
	c, err := testclient.Dial(ctx, testclient.Config{URL: "ws://127.0.0.1:4000/rewind", ID: 262000101, Password: "secret"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	_ = c.SendGroupText(ctx, 91, "anyone?")
	if err := c.KeepAliveNow(ctx); err != nil {
		log.Fatal(err)
	}
	if d, ok := c.TryRecv(); ok {
		fmt.Println("unexpected:", testclient.FormatDatagram(d))
	}
}
