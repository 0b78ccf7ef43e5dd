#include <mpi.h>

// Open MPI's handles are macros around addresses of global objects, which Swift
// cannot import: these accessors hand them over as values.
static inline MPI_Comm conclave_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Comm conclave_comm_null(void) { return MPI_COMM_NULL; }
static inline MPI_Datatype conclave_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype conclave_byte(void) { return MPI_BYTE; }
static inline MPI_Datatype conclave_int32(void) { return MPI_INT32_T; }
static inline MPI_Datatype conclave_int64(void) { return MPI_INT64_T; }
static inline MPI_Datatype conclave_double(void) { return MPI_DOUBLE; }
static inline MPI_Op conclave_op_sum(void) { return MPI_SUM; }
static inline MPI_Op conclave_op_max(void) { return MPI_MAX; }
static inline MPI_Request conclave_request_null(void) { return MPI_REQUEST_NULL; }
static inline MPI_Status *conclave_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline void *conclave_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Errhandler conclave_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline int conclave_any_source(void) { return MPI_ANY_SOURCE; }
static inline int conclave_any_tag(void) { return MPI_ANY_TAG; }
static inline int conclave_undefined(void) { return MPI_UNDEFINED; }
static inline MPI_Comm conclave_comm_self(void) { return MPI_COMM_SELF; }
static inline MPI_Datatype conclave_uint8(void) { return MPI_UINT8_T; }
static inline MPI_Datatype conclave_uint16(void) { return MPI_UINT16_T; }
static inline MPI_Message conclave_message_null(void) { return MPI_MESSAGE_NULL; }
static inline int conclave_success(void) { return MPI_SUCCESS; }
static inline int conclave_thread_multiple(void) { return MPI_THREAD_MULTIPLE; }
static inline int conclave_max_error_string(void) { return MPI_MAX_ERROR_STRING; }
static inline int conclave_max_processor_name(void) { return MPI_MAX_PROCESSOR_NAME; }
// The largest tag every MPI implementation must accept (MPI_TAG_UB is at least this).
static inline int conclave_tag_ub_guaranteed(void) { return 32767; }
