/*
 * A reader of a u64 that runs beside Python without the GIL (called through
 * ctypes, which releases it), as the kernel reads the ring's consumer
 * position: tests/test_ringbuf_consumer_store.py. It counts the reads that
 * saw 0 until *stop is set.
 */
#include <stdint.h>

long watch_zeros(volatile const uint64_t *pos, volatile const int *stop)
{
	long zeros = 0;

	while (!*stop)
		if (*pos == 0)
			zeros++;
	return zeros;
}
