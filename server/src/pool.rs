//! Worker threads that read, check and compress blocks ahead of the sender, handing the
//! results back in block order. The queue is bounded: at most `window` blocks are queued,
//! being coded or waiting to be taken.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use crate::codec::{BlockCoder, Coded};

/// One block to code: read it (from an image the work function knows), or these bytes.
pub enum Job {
    Read(u32),
    Bytes(u32, Vec<u8>),
}

impl Job {
    fn block(&self) -> u32 {
        match self {
            Job::Read(b) | Job::Bytes(b, _) => *b,
        }
    }
}

/// What a worker does with a job, with its own coder.
pub type Work = dyn Fn(&mut BlockCoder, Job) -> io::Result<Coded> + Send + Sync;

struct State {
    queue: VecDeque<Job>,
    done: BTreeMap<u32, io::Result<Coded>>,
    /// Jobs submitted and not yet taken back.
    outstanding: usize,
    /// The next block `try_next` hands out.
    next_out: u32,
    stop: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when a job is queued or the pool stops.
    work: Condvar,
    /// Signalled when a result is ready or one was taken.
    progress: Condvar,
}

pub struct Pool {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    window: usize,
    /// Seconds the workers spent coding, summed (for MB/s per core).
    busy: Arc<Mutex<f64>>,
}

/// Worker threads to use: the cores this process may run on.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Pool {
    /// `threads` workers, each with a coder made by `coder`; `window` blocks in flight at
    /// most (at least `threads`).
    pub fn new(
        threads: usize,
        window: usize,
        coder: impl Fn() -> io::Result<BlockCoder>,
        work: Arc<Work>,
    ) -> io::Result<Self> {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                done: BTreeMap::new(),
                outstanding: 0,
                next_out: 0,
                stop: false,
            }),
            work: Condvar::new(),
            progress: Condvar::new(),
        });
        let busy = Arc::new(Mutex::new(0.0));
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads {
            let mut c = coder()?;
            let shared = Arc::clone(&shared);
            let work = Arc::clone(&work);
            let busy = Arc::clone(&busy);
            let h = std::thread::Builder::new()
                .name(format!("bb-code-{i}"))
                .spawn(move || worker(&shared, &mut c, &*work, &busy))?;
            handles.push(h);
        }
        Ok(Self {
            shared,
            threads: handles,
            window: window.max(threads),
            busy,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `job` unless the window is full (then gives it back). Jobs must come in block
    /// order, starting at 0.
    pub fn try_submit(&self, job: Job) -> Result<(), Job> {
        let mut s = self.lock();
        if s.outstanding >= self.window {
            return Err(job);
        }
        s.outstanding += 1;
        s.queue.push_back(job);
        drop(s);
        self.shared.work.notify_one();
        Ok(())
    }

    /// The next block's result in order, if it is ready; never waits.
    pub fn try_next(&self) -> Option<(u32, io::Result<Coded>)> {
        let mut s = self.lock();
        let b = s.next_out;
        let r = s.done.remove(&b)?;
        s.next_out += 1;
        s.outstanding -= 1;
        drop(s);
        self.shared.progress.notify_all();
        Some((b, r))
    }

    /// The next block's result in order, waiting for it; None when nothing is outstanding.
    pub fn next(&self) -> Option<(u32, io::Result<Coded>)> {
        let mut s = self.lock();
        loop {
            if s.outstanding == 0 {
                return None;
            }
            let b = s.next_out;
            if let Some(r) = s.done.remove(&b) {
                s.next_out += 1;
                s.outstanding -= 1;
                drop(s);
                self.shared.progress.notify_all();
                return Some((b, r));
            }
            s = self
                .shared
                .progress
                .wait(s)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Seconds the workers spent coding, summed over them.
    pub fn busy_s(&self) -> f64 {
        *self.busy.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn threads(&self) -> usize {
        self.threads.len()
    }
}

fn worker(shared: &Shared, coder: &mut BlockCoder, work: &Work, busy: &Mutex<f64>) {
    loop {
        let job = {
            let mut s = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if s.stop {
                    return;
                }
                if let Some(j) = s.queue.pop_front() {
                    break j;
                }
                s = shared.work.wait(s).unwrap_or_else(|e| e.into_inner());
            }
        };
        let b = job.block();
        let t = std::time::Instant::now();
        let r = work(coder, job);
        *busy.lock().unwrap_or_else(|e| e.into_inner()) += t.elapsed().as_secs_f64();
        let mut s = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        s.done.insert(b, r);
        drop(s);
        shared.progress.notify_all();
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.lock().stop = true;
        self.shared.work.notify_all();
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Kind, content_hash};
    use std::time::Instant;

    fn block_bytes(b: u32, len: usize) -> Vec<u8> {
        // Every third block zero, the rest text with the block number in it.
        if b.is_multiple_of(3) {
            return vec![0; len];
        }
        format!("block {b}: some words that compress well. ")
            .into_bytes()
            .into_iter()
            .cycle()
            .take(len)
            .collect()
    }

    fn reading_work(len: usize) -> Arc<Work> {
        Arc::new(move |c: &mut BlockCoder, job: Job| {
            let Job::Read(b) = job else {
                unreachable!("this test reads")
            };
            // Later blocks finish first, so order has to be restored.
            std::thread::sleep(std::time::Duration::from_micros(((b % 4) * 300) as u64));
            Ok(c.code(block_bytes(b, len)))
        })
    }

    #[test]
    fn results_come_back_in_block_order_with_a_bounded_window() {
        let len = 64 * 1408;
        let pool = Pool::new(4, 6, || BlockCoder::new(Some(3), 1408), reading_work(len)).unwrap();
        let mut submitted = 0u32;
        let mut got = Vec::new();
        let start = Instant::now();
        while got.len() < 200 {
            while submitted < 200 && pool.try_submit(Job::Read(submitted)).is_ok() {
                submitted += 1;
            }
            assert!(submitted as usize - got.len() <= 6, "the window holds");
            match pool.try_next() {
                Some((b, r)) => got.push((b, r.unwrap())),
                None => std::thread::yield_now(),
            }
            assert!(start.elapsed().as_secs() < 60, "the pool stalled");
        }
        for (i, (b, c)) in got.iter().enumerate() {
            assert_eq!(*b, i as u32);
            let want = block_bytes(*b, len);
            if b.is_multiple_of(3) {
                assert_eq!(c.kind, Kind::Zero);
            } else {
                assert_eq!(c.kind, Kind::Zstd);
                assert_eq!(c.hash, content_hash(&want));
            }
        }
        assert!(pool.try_next().is_none() && pool.next().is_none());
        assert!(pool.busy_s() > 0.0);
    }

    #[test]
    fn byte_jobs_and_errors_keep_their_place() {
        let work: Arc<Work> = Arc::new(|c: &mut BlockCoder, job: Job| match job {
            Job::Bytes(_, d) => Ok(c.code(d)),
            Job::Read(b) => Err(io::Error::other(format!("no block {b}"))),
        });
        let pool = Pool::new(2, 2, || BlockCoder::new(None, 64), work).unwrap();
        let feeder = std::thread::scope(|s| {
            let p = &pool;
            let h = s.spawn(move || {
                for b in 0..50u32 {
                    let mut job = if b == 17 {
                        Job::Read(b)
                    } else {
                        Job::Bytes(b, vec![b as u8; 100])
                    };
                    while let Err(j) = p.try_submit(job) {
                        job = j;
                        std::thread::yield_now();
                    }
                }
            });
            let mut seen = Vec::new();
            while seen.len() < 50 {
                if let Some((b, r)) = pool.next() {
                    seen.push((b, r.is_ok()));
                }
            }
            h.join().unwrap();
            seen
        });
        for (i, (b, ok)) in feeder.iter().enumerate() {
            assert_eq!(*b, i as u32);
            assert_eq!(*ok, i != 17);
        }
    }

    /// Some real bytes: programs and libraries from /usr, cut into 720 KiB blocks, with a
    /// quarter of the blocks zero (as in a disk image); text if /usr is unreadable.
    fn sample_blocks(total: usize) -> Vec<Vec<u8>> {
        let bb = 512 * 1408;
        let mut data = Vec::with_capacity(total);
        for dir in ["/usr/bin", "/usr/lib/x86_64-linux-gnu", "/usr/lib"] {
            let Ok(rd) = std::fs::read_dir(dir) else {
                continue;
            };
            for e in rd.flatten() {
                if data.len() >= total {
                    break;
                }
                if e.file_type().is_ok_and(|t| t.is_file())
                    && let Ok(b) = std::fs::read(e.path())
                {
                    data.extend_from_slice(&b[..b.len().min(total - data.len())]);
                }
            }
        }
        if data.len() < total {
            let t = b"no programs to read here; some text instead. ";
            data.extend(t.iter().cycle().take(total - data.len()));
        }
        data.chunks(bb)
            .enumerate()
            .map(|(i, c)| {
                if i % 4 == 3 {
                    vec![0; c.len()]
                } else {
                    c.to_vec()
                }
            })
            .collect()
    }

    /// Codes `blocks` on `threads` workers; (MB/s, per-core MB/s, coded bytes).
    fn throughput(blocks: &[Vec<u8>], threads: usize) -> (f64, f64, u64) {
        let work: Arc<Work> = Arc::new(|c: &mut BlockCoder, job: Job| match job {
            Job::Bytes(_, d) => Ok(c.code(d)),
            Job::Read(_) => unreachable!("bytes only"),
        });
        let pool = Pool::new(
            threads,
            2 * threads + 4,
            || BlockCoder::new(Some(3), 1408),
            work,
        )
        .unwrap();
        let start = Instant::now();
        let mut next = 0;
        let mut results = Vec::with_capacity(blocks.len());
        while results.len() < blocks.len() {
            while next < blocks.len()
                && pool
                    .try_submit(Job::Bytes(next as u32, blocks[next].clone()))
                    .is_ok()
            {
                next += 1;
            }
            let (b, r) = pool.next().expect("jobs are outstanding");
            assert_eq!(b as usize, results.len());
            results.push(r.unwrap());
        }
        let wall = start.elapsed().as_secs_f64();
        // Checked after the clock stopped: the figures are the workers' alone.
        let mut coded = 0u64;
        for (c, raw) in results.iter().zip(blocks) {
            match c.kind {
                Kind::Zero => assert!(raw.iter().all(|&x| x == 0)),
                Kind::Raw => assert_eq!(&c.bytes, raw),
                Kind::Zstd => {
                    assert_eq!(&zstd::bulk::decompress(&c.bytes, raw.len()).unwrap(), raw)
                }
            }
            coded += c.bytes.len() as u64;
        }
        let bytes: usize = blocks.iter().map(Vec::len).sum();
        (
            bytes as f64 / wall / 1e6,
            bytes as f64 / pool.busy_s() / 1e6,
            coded,
        )
    }

    /// Prints the server's compression speed, one core and all cores (figures, not limits).
    #[test]
    fn compression_speed_per_core_and_all_cores() {
        let blocks = sample_blocks(48 << 20);
        let bytes: usize = blocks.iter().map(Vec::len).sum();
        let (one, one_core, coded) = throughput(&blocks, 1);
        let n = default_threads();
        let (all, per_core, coded_all) = throughput(&blocks, n);
        assert_eq!(
            coded, coded_all,
            "the same blocks code the same on any thread"
        );
        assert!(coded < bytes as u64);
        eprintln!(
            "server compression (zstd -3, {} MiB of /usr, 1/4 zero blocks, ratio {:.3}): \
             1 thread {one:.0} MB/s ({one_core:.0} per core busy); {n} threads {all:.0} MB/s \
             ({per_core:.0} per core busy)",
            bytes >> 20,
            coded as f64 / bytes as f64
        );
    }
}
