package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// binding reads a binding the servicebinding.io way: one file per key under
// $SERVICE_BINDING_ROOT/<name>.
type binding map[string]string

func readBinding(name string) (binding, error) {
	root := os.Getenv("SERVICE_BINDING_ROOT")
	if root == "" {
		return nil, errors.New("SERVICE_BINDING_ROOT is not set")
	}
	b := binding{}
	for _, k := range []string{"type", "provider", "host", "port", "username", "password", "uri", "database", "vhost"} {
		v, err := os.ReadFile(filepath.Join(root, name, k))
		if err == nil {
			b[k] = string(v)
		} else if !os.IsNotExist(err) {
			return nil, err
		}
	}
	fmt.Printf("binding %s: type %s, provider %s, user %s at %s:%s\n", name, b["type"], b["provider"], b["username"], b["host"], b["port"])
	return b, nil
}

// bindingCommand runs `binding write NAME TEXT` or `binding read NAME` against the binding's
// service, whatever its type.
func bindingCommand(args []string) error {
	if len(args) < 2 || args[0] == "write" && len(args) < 3 {
		return errors.New("usage: testapp binding write NAME TEXT | testapp binding read NAME")
	}
	b, err := readBinding(args[1])
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	switch b["type"] {
	case "postgresql":
		return postgresBinding(ctx, b, args)
	case "rabbitmq":
		return rabbitmqBinding(ctx, b, args)
	case "mongodb":
		return mongodbBinding(ctx, b, args)
	}
	return fmt.Errorf("unknown binding type %q", b["type"])
}

// postgresBinding writes a row to, or reads the rows of, table notes.
func postgresBinding(ctx context.Context, b binding, args []string) error {
	cfg, err := pgx.ParseConfig("sslmode=prefer connect_timeout=10")
	if err != nil {
		return err
	}
	port, err := strconv.Atoi(b["port"])
	if err != nil {
		return err
	}
	cfg.Host, cfg.Port, cfg.User, cfg.Password, cfg.Database = b["host"], uint16(port), b["username"], b["password"], b["database"]
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if args[0] == "write" {
		if _, err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS notes (note text)"); err != nil {
			return err
		}
		if _, err := conn.Exec(ctx, "INSERT INTO notes VALUES ($1)", args[2]); err != nil {
			return err
		}
		fmt.Println("wrote", args[2])
	}
	var notes string
	if err := conn.QueryRow(ctx, "SELECT coalesce(string_agg(note, ',' ORDER BY note), '') FROM notes").Scan(&notes); err != nil {
		return err
	}
	fmt.Println("read:", notes)
	return nil
}

// rabbitmqBinding publishes a confirmed message to queue notes, or reads its messages and
// leaves them there.
func rabbitmqBinding(ctx context.Context, b binding, args []string) error {
	url := fmt.Sprintf("amqp://%s:%s@%s", b["username"], b["password"], net.JoinHostPort(b["host"], b["port"]))
	conn, err := amqp.DialConfig(url, amqp.Config{Vhost: b["vhost"]})
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	if args[0] == "write" {
		if _, err := ch.QueueDeclarePassive("notes", true, false, false, false, nil); err != nil {
			// Not there yet (the channel closed): declare it.
			if ch, err = conn.Channel(); err != nil {
				return err
			}
			closed = ch.NotifyClose(make(chan *amqp.Error, 1))
			if _, err := ch.QueueDeclare("notes", true, false, false, false, nil); err != nil {
				return err
			}
		}
		if err := ch.Confirm(false); err != nil {
			return err
		}
		confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 1))
		if err := ch.PublishWithContext(ctx, "", "notes", false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(args[2])}); err != nil {
			return err
		}
		select {
		case c := <-confirms:
			if !c.Ack {
				return errors.New("the message was not confirmed")
			}
		case err := <-closed:
			return fmt.Errorf("publishing: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		}
		fmt.Println("wrote", args[2])
	}
	var notes []string
	for {
		m, ok, err := ch.Get("notes", false)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		notes = append(notes, string(m.Body))
	}
	// Unacknowledged messages go back to the queue when the channel closes.
	fmt.Println("read:", strings.Join(notes, ","))
	return nil
}

// mongodbBinding inserts a document into collection notes of the binding's database, or reads
// the notes, through the binding's uri.
func mongodbBinding(ctx context.Context, b binding, args []string) error {
	c, err := mongo.Connect(options.Client().ApplyURI(b["uri"]).SetServerSelectionTimeout(20 * time.Second))
	if err != nil {
		return err
	}
	defer func() { _ = c.Disconnect(context.Background()) }()
	notes := c.Database(b["database"]).Collection("notes")
	if args[0] == "write" {
		if _, err := notes.InsertOne(ctx, bson.D{{Key: "note", Value: args[2]}}); err != nil {
			return err
		}
		fmt.Println("wrote", args[2])
	}
	cur, err := notes.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "note", Value: 1}}))
	if err != nil {
		return err
	}
	var docs []struct {
		Note string `bson:"note"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return err
	}
	read := make([]string, len(docs))
	for i, d := range docs {
		read[i] = d.Note
	}
	fmt.Println("read:", strings.Join(read, ","))
	return nil
}
