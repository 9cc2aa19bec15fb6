// Where a Boost.Interprocess message_queue keeps its mutex, for the one
// thing that needs it: releasing a lock that a dead peer left held
// (mechanisms/queues/boost_mq.cpp) and, in tests, taking it to die holding it
// (tests/faults/fake_peer.cpp).
//
// Boost 1.74 locks the queue's interprocess_mutex with a plain lock in every
// operation, timed ones included, and the mutex is not robust: a process
// killed while holding it leaves it held for good. The layout is Boost's
// (the segment starts with managed_open_or_create_impl's state word, then
// the queue header, ipcdetail::mq_hdr_t, whose members are public); the
// lookup checks what it finds against the queue and returns nullptr when
// anything differs, so another Boost version degrades to "cannot release".
#pragma once

#include <pthread.h>

#include <boost/interprocess/ipc/message_queue.hpp>
#include <boost/interprocess/offset_ptr.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <cstddef>

namespace ipcbench::mech::boost_mq {

namespace bi = boost::interprocess;
using QueueHeader = bi::ipcdetail::mq_hdr_t<bi::offset_ptr<void>>;
using QueueSegment =
    bi::ipcdetail::managed_open_or_create_impl<bi::shared_memory_object, 0, true, false>;
static_assert(sizeof(bi::interprocess_mutex) == sizeof(pthread_mutex_t),
              "interprocess_mutex is expected to be a bare pthread mutex");
static_assert(QueueSegment::ManagedOpenOrCreateUserOffset + sizeof(QueueHeader) <= 4096,
              "the queue header must lie in the first page");

// The queue header in the segment mapped at `segment`, unchecked.
inline QueueHeader* queue_header_at(void* segment) {
  return reinterpret_cast<QueueHeader*>(static_cast<char*>(segment) +
                                        QueueSegment::ManagedOpenOrCreateUserOffset);
}

// The queue's mutex inside the segment mapped at `segment` (the start of
// the shared memory object, e.g. a second mapping of its first page), or
// nullptr unless the header there matches `queue` (depth, message size) and
// the mutex is glibc's plain process-shared kind, which any thread may
// release. The header lies within the first 4 KiB.
inline pthread_mutex_t* queue_mutex(void* segment, const bi::message_queue& queue) {
  if (segment == nullptr) return nullptr;
  QueueHeader* header = queue_header_at(segment);
  if (header->m_max_num_msg != queue.get_max_msg() ||
      header->m_max_msg_size != queue.get_max_msg_size()) {
    return nullptr;
  }
  auto* mutex = reinterpret_cast<pthread_mutex_t*>(&header->m_mutex);
#ifdef __GLIBC__
  // Kind: 0..3 the type, 16 robust, 32/64 priority protocols, 128 shared.
  // Only a normal (PTHREAD_MUTEX_TIMED_NP) shared mutex is a bare futex word
  // that unlocks without checking its owner.
  if (mutex->__data.__kind != 128) return nullptr;
  return mutex;
#else
  return nullptr;
#endif
}

}  // namespace ipcbench::mech::boost_mq
