package mongodb

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/datafleet-dev/datafleet/test/testenv"
)

// A tenant's collections named like the ones a restore used to make (`…_datafleet_restore`,
// `…_datafleet_replaced`) are the tenant's data: dumped, restored, and not dropped by a restore.
// Against FerretDB.
func TestCollectionsNamedLikeARestoresAreTheTenants(t *testing.T) {
	ctx := context.Background()
	c := connect(t, testenv.StartFerretDB(t).URI())
	seed(ctx, t, c)
	for _, name := range []string{"orders_datafleet_restore", "orders_datafleet_replaced"} {
		if _, err := c.Database("shop").Collection(name).InsertOne(ctx, bson.D{{Key: "mine", Value: name}}); err != nil {
			t.Fatal(err)
		}
	}
	want := snapshot(ctx, t, c)
	var dump bytes.Buffer
	if err := Dump(ctx, c, &dump); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(ctx, c, bytes.NewReader(dump.Bytes())); err != nil {
		t.Fatal(err)
	}
	if got := snapshot(ctx, t, c); !slices.Equal(got, want) {
		t.Errorf("in place: %d entries differ; first: %v", len(diff(got, want)), first(diff(got, want)))
	}
	other := connect(t, testenv.StartFerretDB(t).URI())
	if _, err := Load(ctx, other, bytes.NewReader(dump.Bytes())); err != nil {
		t.Fatal(err)
	}
	if got := snapshot(ctx, t, other); !slices.Equal(got, want) {
		t.Errorf("into another server: %d entries differ; first: %v", len(diff(got, want)), first(diff(got, want)))
	}
}

// A restore stopped between moving an original aside and renaming the restored collection in
// (FerretDB replaces in two renames; the Job is killed there) leaves the collection under another
// name only. The next restore finishes it first: failing, it leaves the data as it was before
// both; succeeding, the dump's data, and no collection of any restore is left behind.
func TestARestoreStoppedBetweenItsRenamesIsFinishedByTheNext(t *testing.T) {
	ctx := context.Background()
	server := testenv.StartFerretDB(t)
	c := connect(t, server.URI())
	seed(ctx, t, c)
	want := snapshot(ctx, t, c)
	var dump bytes.Buffer
	if err := Dump(ctx, c, &dump); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Database("shop").Collection("orders").DeleteMany(ctx, bson.D{}); err != nil {
		t.Fatal(err)
	}
	before := snapshot(ctx, t, c)

	reached, release := make(chan swap), make(chan struct{})
	var once sync.Once
	afterStep = func(_ context.Context, _ *mongo.Client, s swap) error {
		stop := false
		once.Do(func() { stop = true })
		if stop {
			reached <- s
			<-release // the Job is gone: nothing of it runs until the next restore is done
			return errors.New("killed")
		}
		return nil
	}
	t.Cleanup(func() { afterStep = func(context.Context, *mongo.Client, swap) error { return nil } })
	stoppedLoad := make(chan error, 1)
	go func() {
		_, err := Load(ctx, c, bytes.NewReader(dump.Bytes()))
		stoppedLoad <- err
	}()
	stopped := <-reached
	names, err := c.Database(stopped.DB).ListCollectionNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(names, stopped.Coll) || !slices.Contains(names, stopped.Replaced) {
		t.Fatalf("stopped between the renames, %s has %v", stopped.DB, names)
	}

	// A next restore that fails (a cut dump) still finishes the stopped one: the collection is
	// back as it was before either, not left under another name.
	next := connect(t, server.URI())
	if _, err := Load(ctx, next, bytes.NewReader(dump.Bytes()[:dump.Len()/2])); err == nil {
		t.Fatal("a cut dump was loaded")
	}
	if got := snapshot(ctx, t, next); !slices.Equal(got, before) {
		t.Errorf("after a failed restore: %d entries differ from the data before; first: %v", len(diff(got, before)), first(diff(got, before)))
	}
	if _, err := Load(ctx, next, bytes.NewReader(dump.Bytes())); err != nil {
		t.Fatalf("the next restore: %v", err)
	}
	close(release)
	if err := <-stoppedLoad; err == nil {
		t.Fatal("the stopped restore succeeded")
	}
	if got := snapshot(ctx, t, c); !slices.Equal(got, want) {
		t.Errorf("after the next restore: %d entries differ; first: %v", len(diff(got, want)), first(diff(got, want)))
	}
	if left, err := swaps(ctx, c); err != nil || len(left) > 0 {
		t.Errorf("the journal still holds %v (%v)", left, err)
	}
}
