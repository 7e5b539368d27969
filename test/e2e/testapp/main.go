// Command testapp is the small application end-to-end tests run in pods: it serves HTTP, and it
// probes a URL the way an application would, resolving the name through cluster DNS first.
//
//	testapp serve [addr]     answer every request with "ok <hostname>"
//	testapp probe [-for D] URL  resolve the URL's host, GET it, print what happened; exit 1 on failure.
//	                            With -for, retry for up to D, as an application does while a new
//	                            Service's DNS record and proxy rules appear.
//	testapp write FILE TEXT  write TEXT to FILE, read it back and print it
//	testapp binding write NAME TEXT  with the binding $SERVICE_BINDING_ROOT/NAME (PostgreSQL or
//	                            RabbitMQ), store TEXT (a row, a message) and print what is stored
//	testapp binding read NAME   print what is stored
//	testapp dial -for D ADDR...  open a TCP connection to each host:port, retrying for up to D,
//	                            and print "open ADDR" or "closed ADDR: why" for each (exit 0)
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: testapp serve [addr] | testapp probe URL")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		addr := ":8080"
		if len(os.Args) > 2 {
			addr = os.Args[2]
		}
		err = serve(addr)
	case "probe":
		args, retry := os.Args[2:], time.Duration(0)
		if len(args) > 1 && args[0] == "-for" {
			if retry, err = time.ParseDuration(args[1]); err != nil {
				break
			}
			args = args[2:]
		}
		if len(args) != 1 {
			err = fmt.Errorf("probe needs a URL")
			break
		}
		deadline := time.Now().Add(retry)
		for err = probe(args[0]); err != nil && time.Now().Before(deadline); err = probe(args[0]) {
			fmt.Println("retrying:", err)
			time.Sleep(500 * time.Millisecond)
		}
	case "write":
		if len(os.Args) < 4 {
			err = fmt.Errorf("write needs a file and a text")
			break
		}
		err = write(os.Args[2], os.Args[3])
	case "binding":
		err = bindingCommand(os.Args[2:])
	case "dial":
		err = dialCommand(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "testapp:", err)
		os.Exit(1)
	}
}

func serve(addr string) error {
	host, _ := os.Hostname()
	srv := &http.Server{Addr: addr, ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintf(w, "ok %s\n", host) })}
	return srv.ListenAndServe()
}

func probe(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupHost(ctx, u.Hostname())
	if err != nil {
		return fmt.Errorf("resolve %s: %w", u.Hostname(), err)
	}
	fmt.Printf("resolved %s to %v\n", u.Hostname(), addrs)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	fmt.Printf("GET %s: %d %s", raw, resp.StatusCode, body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

func write(file, text string) error {
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		return err
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	fmt.Printf("wrote %s: %s\n", file, b)
	return nil
}

// dialCommand tries every address at once: a NetworkPolicy drops what it refuses, so a closed
// port costs the whole retry time, and the answers should not add up.
func dialCommand(args []string) error {
	if len(args) < 3 || args[0] != "-for" {
		return fmt.Errorf("usage: dial -for DURATION ADDR...")
	}
	retry, err := time.ParseDuration(args[1])
	if err != nil {
		return err
	}
	addrs := args[2:]
	results := make([]string, len(addrs))
	var wg sync.WaitGroup
	for i, addr := range addrs {
		wg.Go(func() {
			deadline := time.Now().Add(retry)
			for {
				c, err := net.DialTimeout("tcp", addr, 2*time.Second)
				if err == nil {
					c.Close()
					results[i] = "open " + addr
					return
				}
				if time.Now().After(deadline) {
					results[i] = fmt.Sprintf("closed %s: %v", addr, err)
					return
				}
				time.Sleep(200 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	for _, r := range results {
		fmt.Println(r)
	}
	return nil
}
