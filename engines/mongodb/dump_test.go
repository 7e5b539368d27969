package mongodb

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	mongoagent "github.com/datafleet-dev/datafleet/engines/mongodb/agent"
	"github.com/datafleet-dev/datafleet/framework/backup/archive"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// snapshot is every document of every user collection (as canonical extended JSON, so types
// count) and every index (name and keys), sorted.
func snapshot(ctx context.Context, t *testing.T, c *mongo.Client) []string {
	t.Helper()
	var out []string
	dbs, err := c.ListDatabaseNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	for _, db := range dbs {
		if slices.Contains(systemDatabases, db) {
			continue
		}
		names, err := c.Database(db).ListCollectionNames(ctx, bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			coll := c.Database(db).Collection(name)
			out = append(out, fmt.Sprintf("collection %s.%s", db, name))
			cur, err := coll.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
			if err != nil {
				t.Fatal(err)
			}
			for cur.Next(ctx) {
				out = append(out, db+"."+name+" "+bson.Raw(cur.Current).String())
			}
			specs, err := coll.Indexes().ListSpecifications(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range specs {
				out = append(out, fmt.Sprintf("index %s.%s %s %s unique=%v", db, name, s.Name, s.KeysDocument.String(), s.Unique != nil && *s.Unique))
			}
		}
	}
	slices.Sort(out)
	return out
}

func seed(ctx context.Context, t *testing.T, c *mongo.Client) {
	t.Helper()
	orders := c.Database("shop").Collection("orders")
	at := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	var docs []any
	for i := range 2500 {
		docs = append(docs, bson.D{{Key: "_id", Value: i}, {Key: "sku", Value: fmt.Sprintf("sku-%05d", i)},
			{Key: "customer", Value: fmt.Sprintf("c%d", i%37)}, {Key: "at", Value: at.Add(time.Duration(i) * time.Minute)},
			{Key: "total", Value: float64(i) / 4}, {Key: "lines", Value: bson.A{bson.D{{Key: "n", Value: int64(i)}}, "gift"}},
			{Key: "id", Value: bson.NewObjectIDFromTimestamp(at)}})
	}
	if _, err := orders.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	if _, err := orders.Indexes().CreateMany(ctx, []mongo.IndexModel{
		{Keys: bson.D{{Key: "sku", Value: 1}}, Options: options.Index().SetUnique(true).SetName("sku_unique")},
		{Keys: bson.D{{Key: "customer", Value: 1}, {Key: "at", Value: -1}}},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Database("crm").Collection("customers").InsertOne(ctx, bson.D{{Key: "name", Value: "Zoë"}, {Key: "vip", Value: true}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Database("crm").CreateCollection(ctx, "empty"); err != nil {
		t.Fatal(err)
	}
}

// A dump made with the Go driver and restored by the same code round-trips documents (every type)
// and indexes, in place and into another server; a cut dump or wrong counts change nothing.
// Against FerretDB, the wire-protocol server that runs here (docs/engines/mongodb.md).
func TestDumpAndLoadOnFerretDB(t *testing.T) {
	ctx := context.Background()
	src := connect(t, testenv.StartFerretDB(t).URI())
	seed(ctx, t, src)
	want := snapshot(ctx, t, src)
	if len(want) < 2500 {
		t.Fatalf("seeded only %d entries", len(want))
	}
	var dump bytes.Buffer
	if err := Dump(ctx, src, &dump); err != nil {
		t.Fatal(err)
	}

	// In place, after the data changed: it comes back as it was dumped.
	orders := src.Database("shop").Collection("orders")
	if _, err := orders.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$gte", Value: 1000}}}}); err != nil {
		t.Fatal(err)
	}
	if err := orders.Indexes().DropOne(ctx, "sku_unique"); err != nil {
		t.Fatal(err)
	}
	changed := snapshot(ctx, t, src)
	// A cut dump is refused and changes nothing.
	for _, cut := range []int{dump.Len() / 2, dump.Len() - 1} {
		if _, err := Load(ctx, src, bytes.NewReader(dump.Bytes()[:cut])); err == nil {
			t.Errorf("a dump cut at %d of %d bytes was loaded", cut, dump.Len())
		}
		if got := snapshot(ctx, t, src); !slices.Equal(got, changed) {
			t.Fatalf("a cut dump changed the data (or left side collections): %d entries, want %d", len(got), len(changed))
		}
	}
	summary, err := Load(ctx, src, bytes.NewReader(dump.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if got := snapshot(ctx, t, src); !slices.Equal(got, want) {
		t.Errorf("in place: %d entries differ from the dump's %d; first: %v", len(diff(got, want)), len(want), first(diff(got, want)))
	}
	if !strings.Contains(summary, "restored 3 collections, 2501 documents") {
		t.Errorf("summary %q", summary)
	}
	// A second load of the same dump gives the same data.
	if _, err := Load(ctx, src, bytes.NewReader(dump.Bytes())); err != nil {
		t.Fatal(err)
	}

	// Into another, empty server.
	dst := connect(t, testenv.StartFerretDB(t).URI())
	if _, err := Load(ctx, dst, bytes.NewReader(dump.Bytes())); err != nil {
		t.Fatal(err)
	}
	if got := snapshot(ctx, t, dst); !slices.Equal(got, want) {
		t.Errorf("into another server: %d entries differ; first: %v", len(diff(got, want)), first(diff(got, want)))
	}
}

// Users come back with their credentials (the old password logs in on the new server), except
// the operator's own: the target's administrator keeps its password, binding users are left to
// their bindings, and users the dump does not have stay.
func TestUsersRoundTripOnFerretDB(t *testing.T) {
	ctx := context.Background()
	from, to := testenv.StartFerretDB(t), testenv.StartFerretDB(t)
	src, dst := connect(t, from.URI()), connect(t, to.URI())
	create := func(c *mongo.Client, db, user, password string) {
		t.Helper()
		if err := c.Database(db).RunCommand(ctx, bson.D{{Key: "createUser", Value: user}, {Key: "pwd", Value: password},
			{Key: "roles", Value: bson.A{}}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	const bindingUser = "sb_orders_0123456789abcdef_0"
	create(src, "app", "reporting", "reporting-secret")
	create(src, "app", bindingUser, "binding-secret")
	create(src, "admin", mongoagent.AdminUser, "source-admin-secret")
	if _, err := src.Database("app").Collection("notes").InsertOne(ctx, bson.D{{Key: "note", Value: "hello"}}); err != nil {
		t.Fatal(err)
	}
	var dump bytes.Buffer
	if err := Dump(ctx, src, &dump); err != nil {
		t.Fatal(err)
	}
	create(dst, "admin", mongoagent.AdminUser, "target-admin-secret")
	create(dst, "app", "kept", "kept-secret")
	summary, err := Load(ctx, dst, bytes.NewReader(dump.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	// Reporting; not the administrator, not the binding user, not the source's setup user (root,
	// a user of admin), which is named.
	if !strings.HasSuffix(summary, "and 1 users; left out of the users: root of admin") {
		t.Errorf("summary %q", summary)
	}
	for _, c := range []struct {
		db, user, password string
		ok                 bool
	}{
		{"app", "reporting", "reporting-secret", true},
		{"app", "kept", "kept-secret", true},
		{"admin", mongoagent.AdminUser, "target-admin-secret", true},
		{"admin", mongoagent.AdminUser, "source-admin-secret", false},
		{"app", bindingUser, "binding-secret", false},
	} {
		if err := loginTo(ctx, t, to.Addr, c.db, c.user, c.password); (err == nil) != c.ok {
			t.Errorf("logging in to the restored server as %s.%s: %v, want success %v", c.db, c.user, err, c.ok)
		}
	}
	if n, err := dst.Database("admin").Collection(tempUsers).CountDocuments(ctx, bson.D{}); err != nil || n != 0 {
		t.Errorf("the temporary users collection was left with %d documents (%v)", n, err)
	}
}

// A users part forged in the store: a user of admin with root, a user whose _id is the operator's
// administrator's (FerretDB writes users by _id), roles beyond the user's own database, and a
// part that would replace admin's own collections. The administrator keeps its password, the
// intruders do not log in, the roles are narrowed to the user's database; the part is refused.
func TestForgedUsersAreNotRestored(t *testing.T) {
	ctx := context.Background()
	from, to := testenv.StartFerretDB(t), testenv.StartFerretDB(t)
	src, dst := connect(t, from.URI()), connect(t, to.URI())
	for _, c := range []*mongo.Client{src, dst} {
		for _, u := range []struct{ db, user, password string }{{"app", "reporting", "reporting-secret"}, {"admin", mongoagent.AdminUser, "target-admin-secret"}} {
			if err := c.Database(u.db).RunCommand(ctx, bson.D{{Key: "createUser", Value: u.user}, {Key: "pwd", Value: u.password},
				{Key: "roles", Value: bson.A{}}}).Err(); err != nil && c == src {
				t.Fatal(err)
			}
		}
	}
	var dump bytes.Buffer
	if err := Dump(ctx, src, &dump); err != nil {
		t.Fatal(err)
	}
	forge := func(extra func(reporting bson.Raw) []any, parts map[string][]byte) []byte {
		var out bytes.Buffer
		w := archive.NewWriter(&out)
		err := archive.NewReader(bytes.NewReader(dump.Bytes())).Each(func(name string, part io.Reader) error {
			b, _ := io.ReadAll(part)
			if name == usersPart {
				var reporting bson.Raw
				_ = eachDocument(bytes.NewReader(b), func(d bson.Raw) error {
					if u, _ := d.Lookup("user").StringValueOK(); u == "reporting" {
						reporting = slices.Clone(d)
					}
					return nil
				})
				for _, d := range extra(reporting) {
					raw, err := bson.Marshal(d)
					if err != nil {
						return err
					}
					b = append(b, raw...)
				}
			}
			pw, _ := w.Create(name)
			_, err := pw.Write(b)
			return err
		})
		for name, b := range parts {
			pw, _ := w.Create(name)
			_, _ = pw.Write(b)
		}
		if err != nil || w.Close() != nil {
			t.Fatal(err)
		}
		return out.Bytes()
	}
	as := func(reporting bson.Raw, id, user, db string, roles bson.A) bson.D {
		return bson.D{{Key: "_id", Value: id}, {Key: "user", Value: user}, {Key: "db", Value: db},
			{Key: "credentials", Value: reporting.Lookup("credentials")}, {Key: "roles", Value: roles}}
	}
	forged := forge(func(r bson.Raw) []any {
		return []any{
			as(r, "admin.intruder", "intruder", "admin", bson.A{bson.D{{Key: "role", Value: "root"}, {Key: "db", Value: "admin"}}}),
			as(r, "admin."+mongoagent.AdminUser, "takeover", "app", bson.A{}),
			as(r, "app.wide", "wide", "app", bson.A{bson.D{{Key: "role", Value: "readWrite"}, {Key: "db", Value: "app"}},
				bson.D{{Key: "role", Value: "readWrite"}, {Key: "db", Value: "billing"}}, bson.D{{Key: "role", Value: "root"}, {Key: "db", Value: "admin"}}}),
		}
	}, nil)
	summary, err := Load(ctx, dst, bytes.NewReader(forged))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		db, user, password string
		ok                 bool
	}{
		{"admin", mongoagent.AdminUser, "target-admin-secret", true},
		{"admin", "intruder", "reporting-secret", false},
		{"app", "takeover", "reporting-secret", false},
		{"app", "wide", "reporting-secret", true},
	} {
		if err := loginTo(ctx, t, to.Addr, c.db, c.user, c.password); (err == nil) != c.ok {
			t.Errorf("logging in as %s.%s after the forged restore: %v, want success %v", c.db, c.user, err, c.ok)
		}
	}
	var wide bson.Raw
	if wide, err = dst.Database("admin").Collection(usersCollection).FindOne(ctx, bson.D{{Key: "_id", Value: "app.wide"}}).Raw(); err != nil {
		t.Fatal(err)
	}
	if roles := wide.Lookup("roles").String(); strings.Contains(roles, "billing") || strings.Contains(roles, "root") {
		t.Errorf("wide's roles reach beyond its database: %s", roles)
	}
	for _, want := range []string{"intruder of admin", `a user whose id "admin.` + mongoagent.AdminUser + `" is not its own`, "role readWrite@billing of wide", "role root@admin of wide"} {
		if !strings.Contains(summary, want) {
			t.Errorf("the summary does not name %q: %s", want, summary)
		}
	}
	withSystemPart := forge(func(bson.Raw) []any { return nil }, map[string][]byte{"admin/system.users" + docsSuffix: nil})
	if _, err := Load(ctx, dst, bytes.NewReader(withSystemPart)); err == nil || !strings.Contains(err.Error(), "of MongoDB's own data") {
		t.Errorf("a part for admin.system.users: %v", err)
	}
}

func diff(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, "+"+x)
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			out = append(out, "-"+x)
		}
	}
	return out
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}
