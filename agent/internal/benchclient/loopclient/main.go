package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/sworn-id/sworn/agent/internal/benchclient/fetchloop"
)

func main() {
	clients := flag.Int("clients", 1, "concurrent clients")
	newConn := flag.Bool("new", false, "a new connection per fetch instead of one kept per client")
	n := flag.Int("n", 1000, "fetches in all")
	flag.Parse()
	if flag.NArg() != 1 || *clients < 1 || *n < 0 {
		fmt.Fprintln(os.Stderr, "usage: loopclient -clients N [-new] -n FETCHES <socket path>")
		os.Exit(2)
	}
	if err := run(flag.Arg(0), *clients, *newConn, *n); err != nil {
		fmt.Fprintln(os.Stderr, "loopclient:", err)
		os.Exit(1)
	}
}

func run(socket string, clients int, newConn bool, n int) error {
	ctx := context.Background()
	f, err := fetchloop.New("unix://"+socket, clients, newConn)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Warm(ctx, clients); err != nil {
		return err
	}
	fmt.Println("ready")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return errors.New("no start line on stdin")
	}
	res, err := fetchloop.Run(ctx, f, clients, n)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}
