package mongodb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// A restore fills each collection beside the original, then swaps it in. The collections it
// makes for that are named by the restore (a random token), and recorded in a journal in the
// admin database, which no binding may target (ReservedDatabases): a tenant's own collection can
// never be taken for one of them, so it is neither left out of a dump nor dropped by a restore
// however it is named. A restore that stopped anywhere (a killed Job, a lost connection) leaves
// entries that the next restore finishes first: each collection is put back as it was before
// (its original, if it was moved aside), and the restore's collections are dropped.

// swapJournal is the journal's collection, in the admin database.
const swapJournal = "datafleet_swaps"

// swap is one collection a restore replaces.
type swap struct {
	ID   string `bson:"_id"` // DB + "." + Coll
	DB   string `bson:"db"`
	Coll string `bson:"coll"`
	// Side is where the restore fills the collection; Replaced where the original waits while
	// Side is renamed over it, on servers that cannot drop a rename's target (FerretDB).
	Side     string `bson:"side"`
	Replaced string `bson:"replaced"`
}

// newSwap names the collections a restore (token) uses to replace db.coll. FerretDB refuses
// renames to names with dots or dashes: underscores and hex only.
func newSwap(db, coll, token string) swap {
	return swap{ID: db + "." + coll, DB: db, Coll: coll,
		Side: coll + "_datafleet_restore_" + token, Replaced: coll + "_datafleet_replaced_" + token}
}

// restoreToken names one restore's collections.
func restoreToken() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func journal(c *mongo.Client) *mongo.Collection {
	return c.Database("admin").Collection(swapJournal)
}

// journalSwap records s before anything of it exists, replacing what an earlier restore left
// for the same collection (recoverSwaps has finished it).
func journalSwap(ctx context.Context, c *mongo.Client, s swap) error {
	_, err := journal(c).ReplaceOne(ctx, bson.D{{Key: "_id", Value: s.ID}}, s, options.Replace().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("recording the restore of %s: %w", s.ID, err)
	}
	return nil
}

// forgetSwap removes s from the journal once nothing of it is left.
func forgetSwap(ctx context.Context, c *mongo.Client, s swap) error {
	_, err := journal(c).DeleteOne(ctx, bson.D{{Key: "_id", Value: s.ID}})
	return err
}

// swaps reads the journal.
func swaps(ctx context.Context, c *mongo.Client) ([]swap, error) {
	cur, err := journal(c).Find(ctx, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("reading the restore journal: %w", err)
	}
	var out []swap
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("reading the restore journal: %w", err)
	}
	return out, nil
}

// restoreCollections is the set of "db.collection" names that belong to restores, not to the
// data: a dump leaves them out.
func restoreCollections(ctx context.Context, c *mongo.Client) (map[string]bool, error) {
	all, err := swaps(ctx, c)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, s := range all {
		out[s.DB+"."+s.Side], out[s.DB+"."+s.Replaced] = true, true
	}
	return out, nil
}

// recoverSwaps finishes what earlier restores left: the original goes back where it was moved
// aside from (it is the data as it was before that restore), the restore's collections are
// dropped, and the entry is forgotten.
func recoverSwaps(ctx context.Context, c *mongo.Client) error {
	all, err := swaps(ctx, c)
	if err != nil {
		return err
	}
	for _, s := range all {
		if err := undo(ctx, c, s); err != nil {
			return fmt.Errorf("finishing an earlier restore of %s: %w", s.ID, err)
		}
	}
	return nil
}

// undo puts s's collection back as it was before s began, unless s had already replaced it.
func undo(ctx context.Context, c *mongo.Client, s swap) error {
	names, err := c.Database(s.DB).ListCollectionNames(ctx, bson.D{{Key: "name", Value: bson.D{{Key: "$in", Value: bson.A{s.Coll, s.Replaced}}}}})
	if err != nil {
		return err
	}
	if slices.Contains(names, s.Replaced) && !slices.Contains(names, s.Coll) {
		// Stopped between moving the original aside and renaming the restored one in.
		if err := rename(ctx, c, s.DB, s.Replaced, s.Coll, false); err != nil {
			return err
		}
	}
	for _, name := range []string{s.Side, s.Replaced} {
		if err := c.Database(s.DB).Collection(name).Drop(ctx); err != nil {
			return err
		}
	}
	return forgetSwap(ctx, c, s)
}

// codeNotImplemented is what FerretDB answers renameCollection's dropTarget with.
const codeNotImplemented = 238

// replace renames s's side collection over the original: in one step where the server can drop
// the target as it renames (MongoDB), else the original is first moved aside and dropped after.
// The journal entry goes last: until then recoverSwaps can finish or undo it.
func replace(ctx context.Context, c *mongo.Client, s swap) error {
	err := rename(ctx, c, s.DB, s.Side, s.Coll, true)
	var ce mongo.CommandError
	if errors.As(err, &ce) && ce.Code == codeNotImplemented {
		err = replaceInSteps(ctx, c, s)
	}
	if err != nil {
		return fmt.Errorf("replacing %s: %w", s.ID, err)
	}
	return forgetSwap(ctx, c, s)
}

// replaceInSteps moves the original aside, renames the side collection in and drops the original.
func replaceInSteps(ctx context.Context, c *mongo.Client, s swap) error {
	names, err := c.Database(s.DB).ListCollectionNames(ctx, bson.D{{Key: "name", Value: s.Coll}})
	if err != nil {
		return err
	}
	if len(names) > 0 {
		if err := rename(ctx, c, s.DB, s.Coll, s.Replaced, false); err != nil {
			return fmt.Errorf("moving the original aside: %w", err)
		}
	}
	if err := afterStep(ctx, c, s); err != nil {
		return err
	}
	if err := rename(ctx, c, s.DB, s.Side, s.Coll, false); err != nil {
		return err
	}
	return c.Database(s.DB).Collection(s.Replaced).Drop(ctx)
}

// afterStep is called between the two renames of replaceInSteps; tests stop a restore there.
var afterStep = func(context.Context, *mongo.Client, swap) error { return nil }

func rename(ctx context.Context, c *mongo.Client, db, from, to string, dropTarget bool) error {
	cmd := bson.D{{Key: "renameCollection", Value: db + "." + from}, {Key: "to", Value: db + "." + to}}
	if dropTarget {
		cmd = append(cmd, bson.E{Key: "dropTarget", Value: true})
	}
	return c.Database("admin").RunCommand(ctx, cmd).Err()
}
