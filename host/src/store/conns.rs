//! Connections kept between uses on the hot path. sqlx's pool tests every connection
//! handed back to it with a round trip to the database, which would double the round
//! trips of a one-statement commit; a connection used cleanly comes back here instead.
//! One whose use failed goes back to the pool, which tests it and drops it if broken.
//!
//! The cache must not starve the pool's own waiters: a connection kept here is one the
//! pool cannot hand out, and under load the cache alone could keep every connection
//! circulating among its users while a task waiting in the pool waits for seconds. So a
//! connection goes back to the pool whenever a caller of [`Conns::get`] waits there, and
//! in any case once it has been out of the pool for [`MAX_OUT`] (so other users of the
//! pool wait at most about that long).

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool};

/// A connection idle longer than this goes back to the pool to be tested.
const MAX_IDLE: Duration = Duration::from_secs(10);
/// A connection out of the pool this long goes back to it after its current use.
const MAX_OUT: Duration = Duration::from_secs(1);

/// A connection kept out of the pool: since when it is idle, since when it is out.
type Idle = (PoolConnection<Any>, Instant, Instant);

/// Connections checked out of the pool and idle, newest last.
pub(super) struct Conns {
    pool: AnyPool,
    idle: Mutex<Vec<Idle>>,
    /// At most this many are kept, so the pool always has some for other work.
    keep: usize,
    /// Callers of [`Conns::get`] waiting for the pool.
    waiting: AtomicUsize,
}

impl Conns {
    pub(super) fn new(pool: AnyPool, keep: usize) -> Self {
        Self {
            pool,
            idle: Mutex::new(Vec::with_capacity(keep)),
            keep,
            waiting: AtomicUsize::new(0),
        }
    }

    /// A connection: the most recently used idle one, else one from the pool.
    pub(super) async fn get(&self) -> Result<Conn<'_>, sqlx::Error> {
        loop {
            let cached = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            match cached {
                Some((conn, at, out)) if at.elapsed() < MAX_IDLE => {
                    return Ok(self.wrap(conn, out));
                }
                // Stale: the pool tests it on return; the older ones are staler still.
                Some((conn, ..)) => {
                    drop(conn);
                    self.release();
                }
                None => break,
            }
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _waited = Waiting(&self.waiting);
        Ok(self.wrap(self.pool.acquire().await?, Instant::now()))
    }

    /// Hand every idle connection back to the pool.
    pub(super) fn release(&self) {
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(|p| p.into_inner()));
        drop(idle);
    }

    fn wrap(&self, conn: PoolConnection<Any>, out: Instant) -> Conn<'_> {
        Conn {
            conn: Some(conn),
            home: self,
            clean: false,
            out,
        }
    }
}

/// Counts a caller waiting for the pool until dropped (the wait ended or was abandoned).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for Conns {
    fn drop(&mut self) {
        let idle = std::mem::take(self.idle.get_mut().unwrap_or_else(|p| p.into_inner()));
        if tokio::runtime::Handle::try_current().is_err() {
            // A pool connection returns itself through a task, which needs a runtime:
            // without one (a store dropped after its runtime ended), close them here.
            for (conn, ..) in idle {
                drop(conn.detach());
            }
        }
    }
}

/// A connection in use. Call [`Conn::done`] after a clean use to keep it for the next;
/// dropped otherwise (an error on the way), it goes back to the pool to be tested.
pub(super) struct Conn<'a> {
    conn: Option<PoolConnection<Any>>,
    home: &'a Conns,
    clean: bool,
    /// When it left the pool.
    out: Instant,
}

impl Conn<'_> {
    /// The use went cleanly: keep the connection for the next one.
    pub(super) fn done(mut self) {
        self.clean = true;
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        let keep = self.clean
            && self.out.elapsed() < MAX_OUT
            && self.home.waiting.load(Ordering::SeqCst) == 0;
        if keep {
            let mut idle = self.home.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < self.home.keep {
                idle.push((conn, Instant::now(), self.out));
                return;
            }
        }
        // Back to the pool (after the lock is released).
        drop(conn);
    }
}

impl Deref for Conn<'_> {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        self.conn.as_ref().expect("a connection until dropped")
    }
}

impl DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        self.conn.as_mut().expect("a connection until dropped")
    }
}
