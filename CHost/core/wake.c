#include "core/wake.h"

#include <stdatomic.h>
#include <stddef.h>

static _Atomic(void (*)(unsigned)) installed;

void es_wake_install(void (*wake)(unsigned worker))
{
    atomic_store(&installed, wake);
}

void es_wake(unsigned worker)
{
    void (*wake)(unsigned) = atomic_load_explicit(&installed, memory_order_acquire);
    if (wake != NULL)
        wake(worker);
}
