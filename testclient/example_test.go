package testclient_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/rewind-broker/rewind/protocol"
	"github.com/rewind-broker/rewind/testclient"
	"github.com/rewind-broker/rewind/testclient/pushsim"
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

// A phone that attaches its push channel, is suspended, and is woken by the fake FCM when the
// broker pushes. (Compiled, not run: it needs a broker on 127.0.0.1:4000 that sends its FCM
// pushes to prov.FCM.)
func ExamplePhone() {
	ctx := context.Background()
	prov := pushsim.New()
	defer prov.Close()
	keys, err := testclient.GenerateKeys()
	if err != nil {
		log.Fatal(err)
	}
	device := prov.RegisterDevice(pushsim.PlatformFCM, "rewind-dev")
	phone := testclient.NewPhone(testclient.PhoneConfig{
		Client: testclient.Config{URL: "ws://127.0.0.1:4000/rewind", ID: 262000101, Password: "secret"},
		Attach: testclient.AttachOptions{URL: "https://tokens.example.com/rewind", Token: device, Keys: keys},
	})
	defer phone.Close()
	prov.OnPush(device, phone.HandlePush)
	if err := phone.Start(ctx); err != nil {
		log.Fatal(err)
	}
	if err := phone.GoIdle(ctx, true); err != nil { // suspended: the socket is gone
		log.Fatal(err)
	}
	// ... someone sends 262000101 a text: the broker stores it and pushes ...
	if err := phone.WaitReceived(ctx, 1); err != nil {
		log.Fatal(err)
	}
	fmt.Println(testclient.FormatDatagram(phone.Received()[0]))
}
