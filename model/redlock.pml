/*
 * redlock.pml: a Promela model of the Redlock client protocol as
 * redlock-core implements it, checked by spin (scripts/model-check.sh;
 * model/README.md says what is modelled and what is abstracted away).
 *
 * N = 3 nodes, 2 clients, one resource. Time is a global tick counter that
 * the clock process advances; everything else interleaves with it, so the
 * answers of one round come at any ticks and a client may stay in its
 * critical section for any number of ticks. Any request to a node may be
 * lost (or refused, or time out); an acquire may also be applied with its
 * reply lost. One node may crash and restart, at any moment, keeping its
 * keys and counters only with PERSIST.
 *
 * Variants, chosen with spin -D...:
 *   QUARANTINE 0/1  a node whose uptime is below MAX_TTL does not vote
 *   PERSIST    0/1  a restart keeps keys, expiries and fence counters
 *   FENCING    0/1  the fenced acquire: token = max counter + 1, written back
 *   CHECK      1    assert mutual exclusion
 *              2    assert that fencing tokens strictly increase
 * and the bounds (TTL, DRIFT, MAXT, ATTEMPTS, EXTEND, REPLY_LOSS, MAX_CRASHES,
 * MAX_TTL), each with its default below.
 *
 * Which Rust each part stands for (files under redlock-core/src/):
 *   client            acquire.rs  Acquisition::run (attempt, undo, retry),
 *                                 Acquisition::attempt and ::fence;
 *                     lock.rs     Lock::extend, Lock::release
 *   ROUND             round.rs    Engine::round: one request to every node
 *   the grant step    round.rs    Engine::timed_round: a quorum of
 *                                 floor(N/2)+1 votes, expiration =
 *                                 start + TTL - drift, a quorum reached with
 *                                 no validity left is TooSlow
 *   node_acquire      scripts.rs  ACQUIRE_LUA and ACQUIRE_FENCED_LUA
 *   node_fence        scripts.rs  FENCE_LUA
 *   node_extend       scripts.rs  EXTEND_LUA
 *   node_release      scripts.rs  RELEASE_LUA
 *   fence[]           keys.rs     fence_key: the fence counter of the
 *                                 resource's hash slot (one resource here, so
 *                                 one counter; the legacy per-resource
 *                                 counter that FENCE_LUA folds in is left out)
 *   QUARANTINED       the restart quarantine (DESIGN.md section 7)
 *   clock             Runtime::now, and Redis dropping a key at its PX
 *   crasher           a redis-server crash and restart (no Rust counterpart)
 */

#ifndef QUARANTINE
#define QUARANTINE 0
#endif
#ifndef PERSIST
#define PERSIST 0
#endif
#ifndef FENCING
#define FENCING 0
#endif
#ifndef CHECK
#define CHECK 1
#endif

/* The bounds: small, so that every check ends in seconds. */
#ifndef TTL
#define TTL 2           /* the lock's TTL, in ticks */
#endif
#ifndef DRIFT
#define DRIFT 0         /* Settings::drift(ttl), in ticks (see README) */
#endif
#ifndef MAXT
#define MAXT 4          /* the clock stops here */
#endif
#ifndef ATTEMPTS
#define ATTEMPTS 1      /* acquire.rs: attempts (2: the first and one retry) */
#endif
#ifndef EXTEND
#define EXTEND 1        /* at most one extension in the critical section */
#endif
#ifndef REPLY_LOSS
#define REPLY_LOSS 1    /* an acquire may be applied with its reply unseen */
#endif
#ifndef MAX_CRASHES
#define MAX_CRASHES 1
#endif

#define CHECK_MUTEX 1
#define CHECK_FENCE 2
#define N       3       /* nodes */
#define QUORUM  2       /* round.rs quorum_size: floor(N/2)+1 */
#ifndef MAX_TTL
#define MAX_TTL TTL     /* the quarantine horizon: the longest TTL in use */
#endif

byte now;               /* global time, in ticks */
#define me (_pid - 2)   /* a client's index: clock is pid 0, crasher pid 1 */

/* Node state: one resource key, and its fence counter, per node. */
byte owner[N];          /* 0: no key; c+1: the key holds client c's value */
byte expiry[N];         /* the tick at which the key expires (SET ... PX) */
byte fence[N];          /* the fence counter: never expires, only rises */
short boot[N] = -MAX_TTL; /* the tick of the last (re)start; up long enough at 0 */
byte crashes;

/* Ghosts, read only by the properties. */
byte valid_until[2];    /* client c's Lock::expiration; held while > now */
byte last_token;        /* the last fencing token handed out */

#define HOLDS(c)   (valid_until[c] > now)
#define VALID_END  (start + TTL - DRIFT)
#define GRANTABLE  (votes >= QUORUM && now < VALID_END)
/* A vote past the quorum changes nothing (the round is decided): not counted. */
#define VOTE       if :: votes < QUORUM -> votes++ :: else fi
#if QUARANTINE
#define QUARANTINED(i) (now - boot[i] < MAX_TTL)
#else
#define QUARANTINED(i) false
#endif

/* Mutual exclusion. A client starts to hold the lock only when it is granted
 * or extended (time only ends holdings), so asserting it at those two steps
 * checks it in every reachable state. */
#if CHECK == CHECK_MUTEX
#define ASSERT_MUTEX assert(!(HOLDS(0) && HOLDS(1)))
#else
#define ASSERT_MUTEX skip
#endif

/* ---- the clock: time advances; Redis drops the keys whose PX ran out ---- */
#define EXPIRE(i) if :: owner[i] != 0 && expiry[i] <= now -> owner[i] = 0; expiry[i] = 0 :: else fi
#define FORGET(c) if :: valid_until[c] <= now -> valid_until[c] = 0 :: else fi

active proctype clock()
{
  do
  :: now < MAXT -> atomic { now++; EXPIRE(0); EXPIRE(1); EXPIRE(2); FORGET(0); FORGET(1) }
  :: else -> break
  od
}

/* ---- a node crashes and restarts; while it is down its requests are lost,
 * which the clients' lost requests already cover ---- */
#if PERSIST
/* appendfsync always: the key, its absolute expiry and the counter survive */
#define CRASH(i) atomic { crashes++; boot[i] = now; \
  printf("MSC: t=%d node %d crashed and restarted with its data\n", now, i) }
#else
#define CRASH(i) atomic { crashes++; owner[i] = 0; expiry[i] = 0; fence[i] = 0; boot[i] = now; \
  printf("MSC: t=%d node %d crashed and restarted empty\n", now, i) }
#endif

active proctype crasher()
{
  do
  :: crashes < MAX_CRASHES -> CRASH(0)
  :: crashes < MAX_CRASHES -> CRASH(1)
  :: crashes < MAX_CRASHES -> CRASH(2)
  :: else -> break
  od
}

/* ---- what one node does with one request: one atomic Lua call. A vote
 * against, an error, a quarantined node and a lost request all leave the
 * client's count as it was, so they are one branch (skip). ---- */

/* ACQUIRE_LUA, or ACQUIRE_FENCED_LUA, which also reads the fence counter:
 * takes the key if it is free or already ours (a retry re-takes its own
 * partial lock). */
#define FREE_FOR_ME(i) (owner[i] == 0 || owner[i] == me + 1)

inline node_acquire(i)
{
  if
  :: skip
  :: atomic { !QUARANTINED(i) && FREE_FOR_ME(i) ->   /* applied, reply received */
       owner[i] = me + 1; expiry[i] = now + TTL; VOTE;
       printf("MSC: t=%d client %d took node %d\n", now, me, i);
       if :: fence[i] > fmax -> fmax = fence[i] :: else fi }
#if REPLY_LOSS
  :: atomic { !QUARANTINED(i) && FREE_FOR_ME(i) ->   /* applied, reply lost */
       owner[i] = me + 1; expiry[i] = now + TTL;
       printf("MSC: t=%d client %d took node %d, reply lost\n", now, me, i) }
#endif
  fi
}

/* FENCE_LUA: raises the counter to the token (never lowers it) where our
 * value still holds. */
inline node_fence(i)
{
  if
  :: skip
  :: atomic { !QUARANTINED(i) && owner[i] == me + 1 ->
       if :: fence[i] < token -> fence[i] = token :: else fi;
       VOTE }
  fi
}

/* EXTEND_LUA: resets the TTL where our value still holds. */
inline node_extend(i)
{
  if
  :: skip
  :: atomic { !QUARANTINED(i) && owner[i] == me + 1 -> expiry[i] = now + TTL; VOTE }
  fi
}

/* RELEASE_LUA: deletes the key where it holds our value. Sent to every node,
 * quarantined or not: deleting our own key is always safe. A release round
 * is one atomic step (any subset of its requests lost): deleting sooner or
 * later only makes the key free sooner or later, which the lost requests
 * and the TTL already cover. */
inline node_release(i)
{
  if
  :: skip
  :: atomic { owner[i] == me + 1 -> owner[i] = 0; expiry[i] = 0 }
  fi
}

/* round.rs Engine::round: one request to every node. The Rust code sends
 * them in parallel; here they are taken in node order, and the clock, the
 * crasher and the other client may step between any two, so each answer
 * comes at any tick and any of them may be missing. */
#define ROUND(OP) OP(0); OP(1); OP(2)

/* ---- a client: one acquisition (acquire.rs), a critical section, at most
 * one extension, and the release (lock.rs) ---- */
active [2] proctype client()
{
  byte votes, fmax, start, token, attempt;

again:
  /* Acquisition::attempt, through Engine::timed_round(Acquire) */
  start = now;
  ROUND(node_acquire);
#if FENCING
  /* Acquisition::attempt and ::fence: token = the highest counter among the
   * nodes that voted for, plus one; FENCE_LUA writes it back where our value
   * still holds, and a quorum must confirm while validity remains. */
  if
  :: atomic { GRANTABLE -> token = fmax + 1; votes = 0; fmax = 0 }
     ROUND(node_fence)
  :: atomic { !GRANTABLE -> votes = 0; fmax = 0 }
  fi;
#endif
  if
  :: atomic { GRANTABLE ->
       /* granted: Lock::expiration = start + TTL - drift */
       valid_until[me] = VALID_END;
       printf("MSC: t=%d client %d granted until t=%d, token %d\n", now, me, valid_until[me], token);
       ASSERT_MUTEX;
#if CHECK == CHECK_FENCE
       assert(token > last_token);
       last_token = token;
#endif
       votes = 0; start = 0 }
  :: atomic { !GRANTABLE -> votes = 0; fmax = 0; token = 0; start = 0 }
     /* a failed attempt: undo on every node, then retry (Retry::after) */
     atomic { ROUND(node_release) };
     attempt++;
     if
     :: attempt < ATTEMPTS -> goto again
     :: else -> goto done
     fi
  fi;

  /* The critical section: the lock is used while HOLDS(me); the clock may
   * tick any number of times here. Then at most one extension (Lock::extend:
   * a timed round of EXTEND_LUA, refused once expired; a failed extension
   * leaves the old expiration), and the release. */
  if
#if EXTEND
  :: HOLDS(me) ->
     start = now;
     ROUND(node_extend);
     atomic {
       if
       :: GRANTABLE ->
          valid_until[me] = VALID_END;
          printf("MSC: t=%d client %d extended until t=%d\n", now, me, valid_until[me]);
          ASSERT_MUTEX
       :: else -> skip
       fi;
       votes = 0; start = 0 }
#endif
  :: skip
  fi;
  /* Lock::release: stop using the lock, then delete it on every node. */
  atomic { valid_until[me] = 0; ROUND(node_release) };
done:
  skip
}
