package sandbox

import (
	"hash/maphash"
	"strings"

	"github.com/hrsync/hrsync/connector"
)

// How an account is stored. With 10⁵–10⁶ accounts in one process (the
// reconciliation benchmark), the sandbox's memory is most of the process's, and
// the GC lets the heap grow to twice what is live before it collects. So an
// account is one record in a slice, indexed by its position (its slot): its id,
// its other strings packed into one string, its times, version and state, and a
// pointer to its training only when it has any. The indexes hold slots and 32
// bits of hash, never keys: a lookup compares the key of each candidate record.

// The string fields of an account, in their packed order (see pack).
const (
	fExternalID = iota
	fUserName
	fEmail
	fGivenName
	fFamilyName
	fEmployeeNumber
	fOrgUnit
	fJobTitle
	fManagerID
	fLocale
	fOrganization
	nFields
)

// fieldsOf returns a's string fields other than ID and Version, in packed order.
func fieldsOf(a *connector.Account) [nFields]string {
	return [nFields]string{a.ExternalID, a.UserName, a.Profile.Email, a.Profile.GivenName, a.Profile.FamilyName,
		a.Profile.EmployeeNumber, a.Profile.OrgUnit, a.Profile.JobTitle, a.Profile.ManagerID, a.Profile.Locale,
		a.Organization}
}

// pack returns a's string fields (but ID and Version) as one string: each is its
// length as a uvarint, then its bytes. It is never empty.
func pack(a *connector.Account) string {
	fs := fieldsOf(a)
	n := 0
	for _, s := range fs {
		n += uvarintLen(len(s)) + len(s)
	}
	var b strings.Builder
	b.Grow(n)
	for _, s := range fs {
		for v := uint(len(s)); ; v >>= 7 {
			if v < 0x80 {
				b.WriteByte(byte(v))
				break
			}
			b.WriteByte(byte(v) | 0x80)
		}
		b.WriteString(s)
	}
	return b.String()
}

func uvarintLen(n int) int {
	w := 1
	for ; n >= 0x80; n >>= 7 {
		w++
	}
	return w
}

// next splits the first packed field off data. The fields share data's bytes.
func next(data string) (field, rest string) {
	n, i := 0, 0
	for shift := 0; ; shift += 7 {
		c := data[i]
		i++
		n |= int(c&0x7f) << shift
		if c < 0x80 {
			break
		}
	}
	return data[i : i+n], data[i+n:]
}

// unpack is the inverse of pack.
func unpack(data string) (fs [nFields]string) {
	for i := range fs {
		fs[i], data = next(data)
	}
	return fs
}

// field returns the packed field i of data.
func field(data string, i int) string {
	var s string
	for range i + 1 {
		s, data = next(data)
	}
	return s
}

// index is a non-unique hash index: key → slots. It is an open-addressing table
// with linear probing whose buckets hold a slot and 32 bits of the key's hash,
// 8 bytes, and no pointer for the GC to follow; key gives the key of a slot's
// record, to tell apart keys whose hashes collide. The empty key is never
// indexed. l.mu guards it.
type index struct {
	key     func(slot int32) string
	seed    maphash.Seed
	buckets []bucket
	n       int
}

// bucket is one entry of an index; ref 0 is an empty bucket, otherwise the slot + 1.
type bucket struct {
	hash uint32
	ref  uint32
}

func newIndex(key func(slot int32) string) *index {
	return &index{key: key, seed: maphash.MakeSeed()}
}

func (x *index) hash(key string) uint32 { return uint32(maphash.String(x.seed, key)) }

// home is where the probe for hash starts: hash scaled to the table's size.
func (x *index) home(hash uint32) int { return int(uint64(hash) * uint64(len(x.buckets)) >> 32) }

// each calls fn with every slot under key, in no particular order, until fn
// returns false.
func (x *index) each(key string, fn func(slot int32) bool) {
	if key == "" || x.n == 0 {
		return
	}
	h := x.hash(key)
	for i := x.home(h); x.buckets[i].ref != 0; i = x.succ(i) {
		if b := x.buckets[i]; b.hash == h && x.key(int32(b.ref-1)) == key {
			if !fn(int32(b.ref - 1)) {
				return
			}
		}
	}
}

// first returns a slot under key.
func (x *index) first(key string) (slot int32, ok bool) {
	x.each(key, func(s int32) bool { slot, ok = s, true; return false })
	return slot, ok
}

func (x *index) succ(i int) int {
	if i++; i == len(x.buckets) {
		return 0
	}
	return i
}

// add puts slot under key.
func (x *index) add(key string, slot int32) {
	if key == "" {
		return
	}
	// At most 3/4 full, so that probes stay short, and at least half full
	// after growing by half (home scales the hash to any size).
	if (x.n+1)*4 > len(x.buckets)*3 {
		x.grow(max(16, len(x.buckets)+len(x.buckets)/2))
	}
	x.put(bucket{hash: x.hash(key), ref: uint32(slot) + 1})
	x.n++
}

func (x *index) put(b bucket) {
	i := x.home(b.hash)
	for x.buckets[i].ref != 0 {
		i = x.succ(i)
	}
	x.buckets[i] = b
}

func (x *index) grow(size int) {
	old := x.buckets
	x.buckets = make([]bucket, size)
	for _, b := range old {
		if b.ref != 0 {
			x.put(b)
		}
	}
}

// remove takes slot from under key.
func (x *index) remove(key string, slot int32) {
	if key == "" || x.n == 0 {
		return
	}
	h, ref := x.hash(key), uint32(slot)+1
	i := x.home(h)
	for ; x.buckets[i].ref != ref; i = x.succ(i) {
		if x.buckets[i].ref == 0 {
			return
		}
	}
	x.n--
	// Backward-shift deletion: move up every later bucket of the run that may
	// sit in the hole, so that no probe stops early at it.
	for j := i; ; {
		j = x.succ(j)
		b := x.buckets[j]
		if b.ref == 0 {
			break
		}
		// b stays if its home lies cyclically in (i, j].
		if k := x.home(b.hash); (i <= j && i < k && k <= j) || (i > j && (i < k || k <= j)) {
			continue
		}
		x.buckets[i] = b
		i = j
	}
	x.buckets[i] = bucket{}
}

// move moves slot from key old to key new.
func (x *index) move(old, new string, slot int32) {
	if old != new {
		x.remove(old, slot)
		x.add(new, slot)
	}
}

// renumber replaces every slot s by to(s); the keys stay.
func (x *index) renumber(to func(s int32) int32) {
	for i, b := range x.buckets {
		if b.ref != 0 {
			x.buckets[i].ref = uint32(to(int32(b.ref-1))) + 1
		}
	}
}
