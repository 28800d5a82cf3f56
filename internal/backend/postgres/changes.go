package postgres

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/storaged/storaged/internal/backend"
)

var _ backend.ChangeFeed = (*RepositoryBackend)(nil)

// recordsChannel is what the storaged_record_changed trigger of every
// collection's table (migrations 0002, 0003) notifies, with
// "collection/id" as the payload.
const recordsChannel = "storaged_records"

// changeCheck is how long the feed waits for a notification before it
// checks that its connection still answers. With changeCheck for the wait
// and changeCheck for the check, a connection that died silently turns the
// cache off within 2×changeCheck: the bound on a stale read.
const changeCheck = 500 * time.Millisecond

// WatchChanges implements backend.ChangeFeed: it turns the feed on and
// LISTENs on a connection of its own, reconnecting with backoff.
func (b *RepositoryBackend) WatchChanges(ctx context.Context, changed func(collection, id string), live func(bool)) error {
	if err := b.enableFeed(ctx); err != nil {
		return translate(err)
	}
	cfg := b.pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = "storaged change feed"
	delay := 100 * time.Millisecond
	for ctx.Err() == nil {
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err == nil {
			_, err = conn.Exec(ctx, "LISTEN "+recordsChannel)
		}
		if err == nil {
			live(true)
			delay = 100 * time.Millisecond
			err = follow(ctx, conn, changed)
			live(false)
		}
		if conn != nil {
			conn.Close(context.Background())
		}
		if ctx.Err() != nil {
			return nil
		}
		b.log.Warn("postgres: record change feed lost; the read cache is off until it is back", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
	return nil
}

// follow passes notifications on until the connection fails a check.
func follow(ctx context.Context, conn *pgx.Conn, changed func(collection, id string)) error {
	for {
		wctx, cancel := context.WithTimeout(ctx, changeCheck)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			if collection, id, ok := strings.Cut(n.Payload, "/"); ok {
				changed(collection, id)
			}
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			// Quiet: make sure the connection is still there. A timeout
			// while waiting leaves a pgx connection usable.
			cctx, cancel := context.WithTimeout(ctx, changeCheck)
			_, err = conn.Exec(cctx, "SELECT 1")
			cancel()
			if err != nil {
				return err
			}
		default:
			return err
		}
	}
}

// enableFeed turns the change feed on for every collection, for good
// (another daemon's cache may rely on it). The flag goes first: tables
// created from then on get an enabled trigger, and the UPDATE waits for
// creations under way, which hold the flag FOR SHARE. Then the trigger of
// every table created while the feed was off is enabled, each ALTER
// TABLE on its own, since it waits for the open writes of its table.
func (b *RepositoryBackend) enableFeed(ctx context.Context) error {
	if _, err := b.pool.Exec(ctx, `UPDATE storaged_record_feed SET enabled = true WHERE NOT enabled`); err != nil {
		return err
	}
	rows, err := b.pool.Query(ctx, `SELECT c.id FROM storaged_collections c
		JOIN pg_trigger t ON t.tgrelid = to_regclass('storaged_records_' || c.id)
		WHERE t.tgname = 'storaged_record_changed' AND t.tgenabled = 'D' ORDER BY c.id`)
	if err != nil {
		return err
	}
	off, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return err
	}
	for _, id := range off {
		if _, err := b.pool.Exec(ctx, `ALTER TABLE `+tableName(id)+` ENABLE TRIGGER storaged_record_changed`); err != nil {
			return err
		}
	}
	return nil
}
