/* A fake NVML (libnvidia-ml) for tests: the few functions resident's GPU discovery calls, with
 * NVML's ABI, answering from a text file re-read at every call, so a test changes the GPUs by
 * rewriting the file. The file is the one named by fake_nvml_use_file(), else by the environment
 * variable FAKE_NVML_FILE (read at each call); without either, NVML starts with no device.
 *
 * The file, one item a line (anything else is ignored):
 *   gpu <uuid> <total bytes> <free bytes> <name, to the end of the line>
 *   proc <pid> <device index> <used bytes, or "na" for NVML_VALUE_NOT_AVAILABLE>
 *   fail <device index> handle|memory|name|uuid|processes   that call fails for that device
 *   init_fail                                               nvmlInit_v2 fails
 * Devices are numbered in the order of their gpu lines, from 0.
 *
 * Built twice (CMakeLists.txt): fake_nvml exports the three process calls as a recent driver
 * does; fake_nvml_legacy (FAKE_NVML_LEGACY) only the unversioned one, with its shorter struct. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int nvmlReturn_t;
typedef struct nvmlDevice_st* nvmlDevice_t;

enum {
  NVML_SUCCESS = 0,
  NVML_ERROR_UNINITIALIZED = 1,
  NVML_ERROR_INVALID_ARGUMENT = 2,
  NVML_ERROR_INSUFFICIENT_SIZE = 7,
  NVML_ERROR_DRIVER_NOT_LOADED = 9,
  NVML_ERROR_GPU_IS_LOST = 15,
};

typedef struct {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
} nvmlMemory_t;

typedef struct {
  unsigned int pid;
  unsigned long long usedGpuMemory;
} nvmlProcessInfo_v1_t;

typedef struct {
  unsigned int pid;
  unsigned long long usedGpuMemory;
  unsigned int gpuInstanceId;
  unsigned int computeInstanceId;
} nvmlProcessInfo_v2_t;

#define MAX_GPUS 16
#define MAX_PROCS 1024
#define TEXT_SIZE 96

enum { FAIL_HANDLE = 1, FAIL_MEMORY = 2, FAIL_NAME = 4, FAIL_UUID = 8, FAIL_PROCESSES = 16 };

struct gpu {
  char uuid[TEXT_SIZE];
  char name[TEXT_SIZE];
  unsigned long long total, free;
  int fail;
};

struct proc {
  unsigned int pid;
  unsigned int device;
  unsigned long long bytes;
};

struct state {
  int init_fail;
  unsigned int gpu_count, proc_count;
  struct gpu gpus[MAX_GPUS];
  struct proc procs[MAX_PROCS];
};

static char file_path[4096];  /* set by fake_nvml_use_file, before the calls it steers */
static atomic_int initialized;  /* nvmlInit_v2 calls minus nvmlShutdown calls */
static atomic_int init_calls;
static atomic_int process_calls;

/* Counters and set-up for the tests, found with dlsym. */
void fake_nvml_use_file(const char* path) {
  snprintf(file_path, sizeof file_path, "%s", path != NULL ? path : "");
}
int fake_nvml_init_calls(void) { return atomic_load(&init_calls); }
int fake_nvml_process_calls(void) { return atomic_load(&process_calls); }

static void read_state(struct state* s) {
  memset(s, 0, sizeof *s);
  const char* path = file_path[0] != '\0' ? file_path : getenv("FAKE_NVML_FILE");
  if (path == NULL || path[0] == '\0') return;
  FILE* f = fopen(path, "r");
  if (f == NULL) return;
  char line[512];
  while (fgets(line, sizeof line, f) != NULL) {
    line[strcspn(line, "\r\n")] = '\0';
    int name_at = 0;
    unsigned long long total = 0, free_bytes = 0;
    char uuid[TEXT_SIZE], what[32];
    unsigned int pid = 0, device = 0;
    if (sscanf(line, "gpu %95s %llu %llu %n", uuid, &total, &free_bytes, &name_at) == 3 && name_at > 0 &&
        s->gpu_count < MAX_GPUS) {
      struct gpu* g = &s->gpus[s->gpu_count++];
      snprintf(g->uuid, sizeof g->uuid, "%s", uuid);
      snprintf(g->name, sizeof g->name, "%s", line + name_at);
      g->total = total;
      g->free = free_bytes;
    } else if (sscanf(line, "proc %u %u %31s", &pid, &device, what) == 3 && s->proc_count < MAX_PROCS) {
      struct proc* p = &s->procs[s->proc_count++];
      p->pid = pid;
      p->device = device;
      p->bytes = strcmp(what, "na") == 0 ? (unsigned long long)-1 : strtoull(what, NULL, 10);
    } else if (sscanf(line, "fail %u %31s", &device, what) == 2 && device < MAX_GPUS) {
      int bit = strcmp(what, "handle") == 0       ? FAIL_HANDLE
                : strcmp(what, "memory") == 0     ? FAIL_MEMORY
                : strcmp(what, "name") == 0       ? FAIL_NAME
                : strcmp(what, "uuid") == 0       ? FAIL_UUID
                : strcmp(what, "processes") == 0  ? FAIL_PROCESSES
                                                  : 0;
      s->gpus[device].fail |= bit;  /* the gpu line may come later: only its fields are reset */
    } else if (strcmp(line, "init_fail") == 0) {
      s->init_fail = 1;
    }
  }
  fclose(f);
}

/* The device a handle names (handles are index + 1), or NULL. */
static const struct gpu* gpu_of(const struct state* s, nvmlDevice_t device, unsigned int* index) {
  uintptr_t h = (uintptr_t)device;
  if (h == 0 || h > s->gpu_count) return NULL;
  *index = (unsigned int)(h - 1);
  return &s->gpus[h - 1];
}

static nvmlReturn_t copy_text(const char* text, char* out, unsigned int length) {
  if (out == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  if (strlen(text) + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
  memcpy(out, text, strlen(text) + 1);
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlInit_v2(void) {
  atomic_fetch_add(&init_calls, 1);
  struct state* s = malloc(sizeof *s);
  if (s == NULL) return NVML_ERROR_DRIVER_NOT_LOADED;
  read_state(s);
  int fail = s->init_fail;
  free(s);
  if (fail) return NVML_ERROR_DRIVER_NOT_LOADED;
  atomic_fetch_add(&initialized, 1);
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlShutdown(void) {
  if (atomic_load(&initialized) <= 0) return NVML_ERROR_UNINITIALIZED;
  atomic_fetch_sub(&initialized, 1);
  return NVML_SUCCESS;
}

const char* nvmlErrorString(nvmlReturn_t result) {
  switch (result) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
    default: return "Unknown Error";
  }
}

/* Reads the state for a device call: NVML_SUCCESS, or why the call fails. */
static nvmlReturn_t begin(struct state** s) {
  *s = NULL;
  if (atomic_load(&initialized) <= 0) return NVML_ERROR_UNINITIALIZED;
  *s = malloc(sizeof **s);
  if (*s == NULL) return NVML_ERROR_GPU_IS_LOST;
  read_state(*s);
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int* count) {
  struct state* s;
  nvmlReturn_t rc = begin(&s);
  if (rc == NVML_SUCCESS) {
    if (count == NULL) rc = NVML_ERROR_INVALID_ARGUMENT;
    else *count = s->gpu_count;
  }
  free(s);
  return rc;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t* device) {
  struct state* s;
  nvmlReturn_t rc = begin(&s);
  if (rc == NVML_SUCCESS) {
    if (device == NULL || index >= s->gpu_count) rc = NVML_ERROR_INVALID_ARGUMENT;
    else if (s->gpus[index].fail & FAIL_HANDLE) rc = NVML_ERROR_GPU_IS_LOST;
    else *device = (nvmlDevice_t)(uintptr_t)(index + 1);
  }
  free(s);
  return rc;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t* memory) {
  struct state* s;
  unsigned int index = 0;
  nvmlReturn_t rc = begin(&s);
  if (rc == NVML_SUCCESS) {
    const struct gpu* g = gpu_of(s, device, &index);
    if (g == NULL || memory == NULL) rc = NVML_ERROR_INVALID_ARGUMENT;
    else if (g->fail & FAIL_MEMORY) rc = NVML_ERROR_GPU_IS_LOST;
    else {
      memory->total = g->total;
      memory->free = g->free;
      memory->used = g->total - g->free;
    }
  }
  free(s);
  return rc;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char* name, unsigned int length) {
  struct state* s;
  unsigned int index = 0;
  nvmlReturn_t rc = begin(&s);
  if (rc == NVML_SUCCESS) {
    const struct gpu* g = gpu_of(s, device, &index);
    if (g == NULL) rc = NVML_ERROR_INVALID_ARGUMENT;
    else if (g->fail & FAIL_NAME) rc = NVML_ERROR_GPU_IS_LOST;
    else rc = copy_text(g->name, name, length);
  }
  free(s);
  return rc;
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char* uuid, unsigned int length) {
  struct state* s;
  unsigned int index = 0;
  nvmlReturn_t rc = begin(&s);
  if (rc == NVML_SUCCESS) {
    const struct gpu* g = gpu_of(s, device, &index);
    if (g == NULL) rc = NVML_ERROR_INVALID_ARGUMENT;
    else if (g->fail & FAIL_UUID) rc = NVML_ERROR_GPU_IS_LOST;
    else rc = copy_text(g->uuid, uuid, length);
  }
  free(s);
  return rc;
}

/* As NVML: when *count is too small (or infos NULL), *count is set to the number needed and the
 * call fails with NVML_ERROR_INSUFFICIENT_SIZE (NVML_SUCCESS when there are none). `v2` says which
 * struct `infos` points to. */
static nvmlReturn_t processes(nvmlDevice_t device, unsigned int* count, void* infos, int v2) {
  atomic_fetch_add(&process_calls, 1);
  struct state* s;
  unsigned int index = 0;
  nvmlReturn_t rc = begin(&s);
  if (rc != NVML_SUCCESS) return rc;
  const struct gpu* g = gpu_of(s, device, &index);
  if (g == NULL || count == NULL) {
    rc = NVML_ERROR_INVALID_ARGUMENT;
  } else if (g->fail & FAIL_PROCESSES) {
    rc = NVML_ERROR_GPU_IS_LOST;
  } else {
    unsigned int needed = 0;
    for (unsigned int i = 0; i < s->proc_count; ++i) needed += s->procs[i].device == index;
    if (needed > 0 && (infos == NULL || *count < needed)) {
      *count = needed;
      rc = NVML_ERROR_INSUFFICIENT_SIZE;
    } else {
      unsigned int n = 0;
      for (unsigned int i = 0; i < s->proc_count; ++i) {
        if (s->procs[i].device != index) continue;
        if (v2) {
          nvmlProcessInfo_v2_t* out = (nvmlProcessInfo_v2_t*)infos + n;
          out->pid = s->procs[i].pid;
          out->usedGpuMemory = s->procs[i].bytes;
          out->gpuInstanceId = 0xFFFFFFFFu;
          out->computeInstanceId = 0xFFFFFFFFu;
        } else {
          nvmlProcessInfo_v1_t* out = (nvmlProcessInfo_v1_t*)infos + n;
          out->pid = s->procs[i].pid;
          out->usedGpuMemory = s->procs[i].bytes;
        }
        ++n;
      }
      *count = n;
    }
  }
  free(s);
  return rc;
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses(nvmlDevice_t device, unsigned int* count,
                                                  nvmlProcessInfo_v1_t* infos) {
  return processes(device, count, infos, 0);
}

#ifndef FAKE_NVML_LEGACY
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v2(nvmlDevice_t device, unsigned int* count,
                                                     nvmlProcessInfo_v2_t* infos) {
  return processes(device, count, infos, 1);
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int* count,
                                                     nvmlProcessInfo_v2_t* infos) {
  return processes(device, count, infos, 1);
}
#endif
