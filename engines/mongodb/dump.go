package mongodb

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	mongoagent "github.com/datafleet-dev/datafleet/engines/mongodb/agent"
	"github.com/datafleet-dev/datafleet/framework/backup/archive"
	"github.com/datafleet-dev/datafleet/framework/names"
)

// A dump is a framework/backup/archive with, for every collection of every user database, a part
// "<db>/<collection>.indexes" (listIndexes' documents, as BSON one after the other) and a part
// "<db>/<collection>.bson" (the documents, likewise), then a part "users" (admin.system.users'
// documents but the operator's own users: credentials as salted SCRAM keys, never passwords),
// then a part "counts" with each collection's number of documents. BSON, not JSON: every type
// round-trips exactly.
const (
	indexesSuffix = ".indexes"
	docsSuffix    = ".bson"
	usersPart     = "users"
	countsPart    = "counts"
	loadBatch     = 1000
)

// systemDatabases are MongoDB's own; they are not dumped.
var systemDatabases = []string{"admin", "config", "local"}

// Dump streams every user database of the server into w.
func Dump(ctx context.Context, c *mongo.Client, w io.Writer) error {
	a := archive.NewWriter(w)
	dbs, err := c.ListDatabaseNames(ctx, bson.D{})
	if err != nil {
		return fmt.Errorf("listing databases: %w", err)
	}
	slices.Sort(dbs)
	restores, err := restoreCollections(ctx, c)
	if err != nil {
		return err
	}
	counts := map[string]int64{}
	for _, db := range dbs {
		if slices.Contains(systemDatabases, db) {
			continue
		}
		specs, err := c.Database(db).ListCollectionSpecifications(ctx, bson.D{{Key: "type", Value: "collection"}})
		if err != nil {
			return fmt.Errorf("listing the collections of %s: %w", db, err)
		}
		for _, spec := range specs {
			if strings.HasPrefix(spec.Name, "system.") || restores[db+"."+spec.Name] {
				continue
			}
			n, err := dumpCollection(ctx, c.Database(db).Collection(spec.Name), a)
			if err != nil {
				return fmt.Errorf("%s.%s: %w", db, spec.Name, err)
			}
			counts[db+"/"+spec.Name] = n
		}
	}
	if err := dumpUsers(ctx, c, a); err != nil {
		return fmt.Errorf("users: %w", err)
	}
	part, err := a.Create(countsPart)
	if err != nil {
		return err
	}
	if err := json.NewEncoder(part).Encode(counts); err != nil {
		return err
	}
	return a.Close()
}

func dumpCollection(ctx context.Context, coll *mongo.Collection, a *archive.Writer) (int64, error) {
	name := coll.Database().Name() + "/" + coll.Name()
	part, err := a.Create(name + indexesSuffix)
	if err != nil {
		return 0, err
	}
	cur, err := coll.Indexes().List(ctx)
	if err != nil {
		return 0, fmt.Errorf("listing indexes: %w", err)
	}
	if _, err := copyCursor(ctx, cur, part); err != nil {
		return 0, fmt.Errorf("reading indexes: %w", err)
	}
	if part, err = a.Create(name + docsSuffix); err != nil {
		return 0, err
	}
	cur, err = coll.Find(ctx, bson.D{})
	if err != nil {
		return 0, err
	}
	return copyCursor(ctx, cur, part)
}

// copyCursor writes each document of the cursor as raw BSON and closes it.
func copyCursor(ctx context.Context, cur *mongo.Cursor, w io.Writer) (int64, error) {
	defer cur.Close(ctx)
	var n int64
	for cur.Next(ctx) {
		if _, err := w.Write(cur.Current); err != nil {
			return n, err
		}
		n++
	}
	return n, cur.Err()
}

// usersCollection holds every user of a MongoDB server with its roles and SCRAM credentials
// (FerretDB keeps the same documents). Reading it needs the backup role, which root has.
const usersCollection = "system.users"

// operatorUser reports users a dump leaves out and a restore never touches: the operator's
// administrator (the target has its own, with its own password) and binding users, which their
// bindings create with their own passwords, as for PostgreSQL.
func operatorUser(db, user string) bool {
	return db == "admin" && user == mongoagent.AdminUser || strings.HasPrefix(user, names.UserPrefix)
}

func dumpUsers(ctx context.Context, c *mongo.Client, a *archive.Writer) error {
	cur, err := c.Database("admin").Collection(usersCollection).Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return err
	}
	defer cur.Close(ctx)
	part, err := a.Create(usersPart)
	if err != nil {
		return err
	}
	for cur.Next(ctx) {
		db, _ := cur.Current.Lookup("db").StringValueOK()
		user, _ := cur.Current.Lookup("user").StringValueOK()
		if operatorUser(db, user) {
			continue
		}
		if _, err := part.Write(cur.Current); err != nil {
			return err
		}
	}
	return cur.Err()
}

// Load restores a dump into the server. Each collection is filled as a side collection next to
// the original (named and journaled by this restore: swap.go) and only once the whole dump was
// read and every side collection holds the number of documents the dump counted are the
// originals replaced; any failure before that drops the side collections and leaves the data as
// it was, and a restore stopped anywhere is finished by the next one. It returns a summary of
// what it verified.
func Load(ctx context.Context, c *mongo.Client, r io.Reader) (summary string, err error) {
	if err := recoverSwaps(ctx, c); err != nil {
		return "", err
	}
	token := restoreToken()
	var started []swap
	defer func() {
		if err != nil {
			for _, s := range started {
				_ = undo(context.WithoutCancel(ctx), c, s)
			}
		}
	}()
	var counts map[string]int64
	var users []bson.Raw
	err = archive.NewReader(r).Each(func(name string, part io.Reader) error {
		switch name {
		case countsPart:
			return json.NewDecoder(part).Decode(&counts)
		case usersPart: // a few documents: held until the data is in place
			return eachDocument(part, func(doc bson.Raw) error {
				users = append(users, slices.Clone(doc))
				return nil
			})
		}
		db, rest, ok := strings.Cut(name, "/")
		switch {
		case !ok:
			return fmt.Errorf("unexpected part %q", name)
		case slices.Contains(systemDatabases, db) || strings.HasPrefix(rest, "system."):
			// No dump writes these: a forged part would replace the server's own collections.
			return fmt.Errorf("the archive has a part %q of MongoDB's own data, which no dump writes: it is refused", name)
		case strings.HasSuffix(rest, indexesSuffix):
			s := newSwap(db, strings.TrimSuffix(rest, indexesSuffix), token)
			if err := journalSwap(ctx, c, s); err != nil {
				return err
			}
			started = append(started, s)
			return createIndexes(ctx, c.Database(db).Collection(s.Side), part)
		case strings.HasSuffix(rest, docsSuffix):
			// A dump writes a collection's indexes first: the documents go only where they began.
			s := newSwap(db, strings.TrimSuffix(rest, docsSuffix), token)
			if !slices.Contains(started, s) {
				return fmt.Errorf("the archive's part %q comes before the collection's indexes, which no dump writes: it is refused", name)
			}
			return insertAll(ctx, c.Database(db).Collection(s.Side), part)
		}
		return fmt.Errorf("unexpected part %q", name)
	})
	if err != nil {
		return "", err
	}
	if len(counts) != len(started) {
		return "", fmt.Errorf("the dump counts %d collections but holds %d", len(counts), len(started))
	}
	var docs int64
	for _, s := range started {
		key := s.DB + "/" + s.Coll
		n, err := c.Database(s.DB).Collection(s.Side).CountDocuments(ctx, bson.D{})
		if err != nil {
			return "", err
		}
		if want, ok := counts[key]; !ok || n != want {
			return "", fmt.Errorf("%s: %d documents restored, the dump counted %d: nothing was replaced", key, n, want)
		}
		docs += n
	}
	for len(started) > 0 {
		if err := replace(ctx, c, started[0]); err != nil {
			return "", err
		}
		// Replaced: a later failure undoes only the collections not replaced yet.
		started = started[1:]
	}
	users, left := restorableUsers(users)
	if err := loadUsers(ctx, c, users); err != nil {
		return "", fmt.Errorf("the documents were restored, the users were not: %w", err)
	}
	summary = fmt.Sprintf("restored %d collections, %d documents, each collection's documents counted as in the dump, and %d users", len(counts), docs, len(users))
	if len(left) > 0 {
		summary += "; left out of the users: " + strings.Join(left, ", ")
	}
	return summary, nil
}

// bindingRoles are the roles a binding's user has, on its own database (RolesFor): a restored
// user keeps no other.
var bindingRoles = []string{"read", "readWrite", "dbOwner"}

// restorableUsers keeps the dumped users a restore may create, each with the roles a binding
// could have given it, and names what it left out. The users part is data from a store, which
// whoever can write to the store can forge: a user of admin (root, userAdminAnyDatabase) would
// own the replica set and the operator's administrator with it, and an _id that is not the
// user's own would overwrite another user (FerretDB keeps its users in a collection written by
// _id). The operator's own users are left out without a word, as the dump leaves them out.
func restorableUsers(users []bson.Raw) (kept []bson.Raw, left []string) {
	for _, u := range users {
		db, _ := u.Lookup("db").StringValueOK()
		user, _ := u.Lookup("user").StringValueOK()
		id, _ := u.Lookup("_id").StringValueOK()
		switch {
		case operatorUser(db, user):
			continue
		case db == "" || user == "" || id != db+"."+user:
			left = append(left, fmt.Sprintf("a user whose id %q is not its own", id))
			continue
		case slices.Contains(systemDatabases, db):
			left = append(left, user+" of "+db)
			continue
		}
		var doc bson.D
		if err := bson.Unmarshal(u, &doc); err != nil {
			left = append(left, fmt.Sprintf("%s of %s (unreadable)", user, db))
			continue
		}
		for i, e := range doc {
			if e.Key != "roles" {
				continue
			}
			roles, _ := e.Value.(bson.A)
			var keep bson.A
			for _, r := range roles {
				var role, rdb string
				rd, _ := r.(bson.D)
				for _, f := range rd {
					switch f.Key {
					case "role":
						role, _ = f.Value.(string)
					case "db":
						rdb, _ = f.Value.(string)
					}
				}
				if rdb == db && slices.Contains(bindingRoles, role) {
					keep = append(keep, r)
				} else {
					left = append(left, fmt.Sprintf("role %s@%s of %s", role, rdb, user))
				}
			}
			doc[i].Value = keep
		}
		b, err := bson.Marshal(doc)
		if err != nil {
			left = append(left, fmt.Sprintf("%s of %s (unreadable)", user, db))
			continue
		}
		kept = append(kept, b)
	}
	return kept, left
}

// tempUsers is where MongoDB's restore takes users from (as mongorestore does).
const tempUsers = "datafleet_restore_users"

// codeCommandNotFound is what a server without the command answers.
const codeCommandNotFound = 59

// loadUsers creates or replaces the dumped users with their credentials and roles, keeping users
// the dump does not have. MongoDB merges them from a temporary collection with
// _mergeAuthzCollections, as mongorestore does (system.users cannot be written directly);
// FerretDB has no such command but keeps its users in a collection it lets root write.
func loadUsers(ctx context.Context, c *mongo.Client, users []bson.Raw) error {
	users = slices.DeleteFunc(users, func(u bson.Raw) bool {
		db, _ := u.Lookup("db").StringValueOK()
		user, _ := u.Lookup("user").StringValueOK()
		return operatorUser(db, user)
	})
	if len(users) == 0 {
		return nil
	}
	admin := c.Database("admin")
	temp := admin.Collection(tempUsers)
	if err := temp.Drop(ctx); err != nil {
		return err
	}
	defer func() { _ = temp.Drop(context.WithoutCancel(ctx)) }()
	docs := make([]any, len(users))
	for i, u := range users {
		docs[i] = u
	}
	if _, err := temp.InsertMany(ctx, docs); err != nil {
		return err
	}
	err := admin.RunCommand(ctx, bson.D{{Key: "_mergeAuthzCollections", Value: 1}, {Key: "tempUsersCollection", Value: "admin." + tempUsers},
		{Key: "tempRolesCollection", Value: ""}, {Key: "db", Value: ""}, {Key: "drop", Value: false}}).Err()
	var ce mongo.CommandError
	if !errors.As(err, &ce) || ce.Code != codeCommandNotFound {
		return err
	}
	for _, u := range users {
		if _, err := admin.Collection(usersCollection).ReplaceOne(ctx, bson.D{{Key: "_id", Value: u.Lookup("_id")}}, u,
			options.Replace().SetUpsert(true)); err != nil {
			return err
		}
	}
	return nil
}

// createIndexes recreates the dumped indexes (all but _id's, which every collection has).
func createIndexes(ctx context.Context, coll *mongo.Collection, r io.Reader) error {
	var specs bson.A
	err := eachDocument(r, func(doc bson.Raw) error {
		var spec bson.D
		if err := bson.Unmarshal(doc, &spec); err != nil {
			return err
		}
		// "v" and "ns" describe the index where it was; the server sets them anew.
		spec = slices.DeleteFunc(spec, func(e bson.E) bool { return e.Key == "v" || e.Key == "ns" })
		for _, e := range spec {
			if e.Key == "name" && e.Value == "_id_" {
				return nil
			}
		}
		specs = append(specs, spec)
		return nil
	})
	if err != nil || len(specs) == 0 {
		if err == nil {
			// Create the collection even without indexes: an empty collection is restored too.
			err = coll.Database().CreateCollection(ctx, coll.Name())
		}
		return err
	}
	return coll.Database().RunCommand(ctx, bson.D{{Key: "createIndexes", Value: coll.Name()}, {Key: "indexes", Value: specs}}).Err()
}

func insertAll(ctx context.Context, coll *mongo.Collection, r io.Reader) error {
	batch := make([]any, 0, loadBatch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		_, err := coll.InsertMany(ctx, batch)
		batch = batch[:0]
		return err
	}
	if err := eachDocument(r, func(doc bson.Raw) error {
		batch = append(batch, doc)
		if len(batch) == loadBatch {
			return flush()
		}
		return nil
	}); err != nil {
		return err
	}
	return flush()
}

// eachDocument reads BSON documents one after the other (each starts with its int32 length).
func eachDocument(r io.Reader, fn func(bson.Raw) error) error {
	var size [4]byte
	for {
		if _, err := io.ReadFull(r, size[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		n := binary.LittleEndian.Uint32(size[:])
		if n < 5 || n > 48<<20 {
			return fmt.Errorf("a BSON document of %d bytes", n)
		}
		doc := make([]byte, n)
		copy(doc, size[:])
		if _, err := io.ReadFull(r, doc[4:]); err != nil {
			return err
		}
		if err := fn(doc); err != nil {
			return err
		}
	}
}
