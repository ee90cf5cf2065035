//! Which writes may start: one at a time per object, a bounded number in
//! all. Plain synchronous bookkeeping; the writer does the I/O.

use std::collections::HashMap;

use ferrolb_core::allocator::ServiceKey;

use crate::index::Write;

/// The object a write is about: writes with the same key never overlap.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// A Service.
    Service(ServiceKey),
    /// An IPAddressPool (namespace, name).
    Pool(String, String),
    /// An L2Advertisement (namespace, name).
    Advertisement(String, String),
}

impl Key {
    /// The object `write` is about.
    pub fn of(write: &Write) -> Key {
        match write {
            Write::Service(w) => Key::Service(w.key.clone()),
            Write::Pool {
                name, namespace, ..
            } => Key::Pool(namespace.clone(), name.clone()),
            Write::Advertisement {
                name, namespace, ..
            } => Key::Advertisement(namespace.clone(), name.clone()),
        }
    }
}

/// The objects with a write in flight, each with the write waiting behind
/// it, if any.
///
/// Only the newest waiting write per object is kept: every [`Write`]
/// carries the whole desired state of what ferrolb owns on its object (a
/// Service's annotation and ingress, a pool's or advertisement's whole
/// status), so writing an older one first would only be overwritten, and
/// the index already counts the newer one as on its way. A replaced write
/// is not reported as failed: it was superseded, not refused.
#[derive(Debug)]
pub struct Queue {
    limit: usize,
    objects: HashMap<Key, Option<Write>>,
}

impl Queue {
    /// At most `limit` (at least 1) writes in flight.
    pub fn new(limit: usize) -> Self {
        Queue {
            limit: limit.max(1),
            objects: HashMap::new(),
        }
    }

    /// Whether a write for another object may start: take a new update
    /// only then, so the bounded channel holds back the rest.
    pub fn has_room(&self) -> bool {
        self.objects.len() < self.limit
    }

    /// Writes in flight.
    pub fn in_flight(&self) -> usize {
        self.objects.len()
    }

    /// A write arrived: `Some(write)` if it may start now; `None` if it
    /// waits for the write in flight for its object (replacing any older
    /// one waiting there). Call only while [`Queue::has_room`].
    pub fn offer(&mut self, write: Write) -> Option<Write> {
        match self.objects.get_mut(&Key::of(&write)) {
            Some(waiting) => {
                *waiting = Some(write);
                None
            }
            None => {
                debug_assert!(self.has_room(), "offered beyond the limit");
                self.objects.insert(Key::of(&write), None);
                Some(write)
            }
        }
    }

    /// The write for `key` finished: the one waiting behind it, which is
    /// now in flight (call `finished` again if it is not started after
    /// all), or `None` when the object has nothing more to write.
    pub fn finished(&mut self, key: &Key) -> Option<Write> {
        let next = self.objects.get_mut(key)?.take();
        if next.is_none() {
            self.objects.remove(key);
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::ServiceWrite;
    use ferrolb_core::allocator::Assignment;

    fn write(name: &str, ip: Option<&str>) -> Write {
        Write::Service(ServiceWrite {
            key: ServiceKey::new("default", name),
            assignment: ip.map(|ip| Assignment {
                pool: "blue".into(),
                ips: vec![ip.parse().unwrap()],
            }),
        })
    }

    fn key(name: &str) -> Key {
        Key::Service(ServiceKey::new("default", name))
    }

    #[test]
    fn writes_for_different_objects_start_at_once_up_to_the_limit() {
        let mut q = Queue::new(2);
        assert!(q.offer(write("a", Some("192.0.2.1"))).is_some());
        assert!(q.has_room());
        assert!(q.offer(write("b", Some("192.0.2.2"))).is_some());
        assert!(!q.has_room());
        assert_eq!(q.finished(&key("a")), None);
        assert!(q.has_room());
        assert_eq!(q.in_flight(), 1);
    }

    #[test]
    fn a_write_for_a_busy_object_waits_and_only_the_newest_waits() {
        let mut q = Queue::new(1);
        let first = write("a", Some("192.0.2.1"));
        assert_eq!(q.offer(first.clone()), Some(first));
        assert_eq!(q.offer(write("a", Some("192.0.2.2"))), None);
        let newest = write("a", None);
        assert_eq!(q.offer(newest.clone()), None);
        assert_eq!(q.in_flight(), 1, "waiting writes take no slot");
        assert_eq!(q.finished(&key("a")), Some(newest));
        assert_eq!(q.in_flight(), 1, "the waiting write is in flight now");
        assert_eq!(q.finished(&key("a")), None);
        assert_eq!(q.in_flight(), 0);
    }

    #[test]
    fn pools_and_advertisements_of_one_name_are_different_objects() {
        let mut q = Queue::new(4);
        let pool = Write::Pool {
            name: "x".into(),
            namespace: "ferrolb-system".into(),
            status: Default::default(),
        };
        let ad = Write::Advertisement {
            name: "x".into(),
            namespace: "ferrolb-system".into(),
            status: Default::default(),
        };
        assert!(q.offer(pool.clone()).is_some());
        assert!(q.offer(ad).is_some());
        assert_eq!(q.offer(pool), None);
    }
}
