/* SPDX-License-Identifier: MIT */
/*
 * `pghactl query`: runs SQL on a member chosen by role or name, over a blocking libpq connection (the
 * CLI may block; connect_timeout=5 bounds the connection, statement_timeout is the operator's choice),
 * and prints the rows as patronictl's print_output() does (tsv by default). A role other than leader or
 * any is verified with pg_is_in_recovery(), as patronictl does.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "ctl-args.h"
#include "ctl-internal.h"
#include "pgha/fileio.h"
#include "pgha/json.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(PGconn *, PQfinish);
DEFINE_TRIVIAL_CLEANUP_FUNC(PGresult *, PQclear);

static void print_error_row(CtlFormat format, const char *delimiter, const char *message) {
        _cleanup_(ctl_table_freep) CtlTable *t = NULL;
        _cleanup_free_ char *ts = ctl_timestamp(0);
        cJSON *items[2];

        if (ctl_table_new((const char *const[]){"", ""}, 2, &t) < 0)
                return;
        items[0] = cJSON_CreateString(strna(ts));
        items[1] = cJSON_CreateString(message);
        if (ctl_table_add_row(t, items) < 0)
                return;
        if (format == CTL_FORMAT_TSV) {
                /* no header line when there are no columns */
                _cleanup_free_ char *a = NULL, *b = NULL;
                if (ctl_value_to_string(t->cells[0], &a) >= 0 && ctl_value_to_string(t->cells[1], &b) >= 0)
                        printf("%s%s%s\n", a, delimiter, b);
                return;
        }
        (void)ctl_table_print(t, format, NULL, delimiter, stdout);
}

/* A cell typed as psycopg would: integers and booleans as such, NULL as None, the rest as text. */
static cJSON *cell_value(const PGresult *res, int row, int col) {
        Oid type = PQftype(res, col);
        const char *v;

        if (PQgetisnull(res, row, col))
                return cJSON_CreateNull();
        v = PQgetvalue(res, row, col);
        switch (type) {
        case 20: /* int8 */
        case 21: /* int2 */
        case 23: /* int4 */
        case 26: /* oid */
                return json_int64_new(strtoll(v, NULL, 10));
        case 16: /* bool */
                return cJSON_CreateBool(streq(v, "t"));
        default:
                return cJSON_CreateString(v);
        }
}

static char *read_password(void) {
        struct termios old, raw;
        bool tty = tcgetattr(STDIN_FILENO, &old) == 0;
        char *line = NULL;
        size_t size = 0;
        ssize_t l;

        fputs("Password: ", stdout);
        fflush(stdout);
        if (tty) {
                raw = old;
                raw.c_lflag &= ~(tcflag_t)ECHO;
                (void)tcsetattr(STDIN_FILENO, TCSANOW, &raw);
        }
        l = getline(&line, &size, stdin);
        if (tty) {
                (void)tcsetattr(STDIN_FILENO, TCSANOW, &old);
                fputc('\n', stdout);
        }
        if (l < 0)
                return mfree(line);
        while (l > 0 && (line[l - 1] == '\n' || line[l - 1] == '\r'))
                line[--l] = '\0';
        return line;
}

typedef struct Query {
        const char *name, *role, *member, *sql, *user, *password, *dbname, *delimiter;
        CtlFormat format;
} Query;

/* One round: reads the cluster, picks the member, connects and runs the SQL. Errors of the member or
 * the SQL are printed as patronictl's error row and return -EIO; others (etcd) are reported and
 * returned as they are. */
static int query_once(Ctl *c, const Query *q) {
        _cleanup_(dcs_cluster_freep) DcsCluster *cluster = NULL;
        _cleanup_(PQfinishp) PGconn *conn = NULL;
        _cleanup_(PQclearp) PGresult *res = NULL;
        _cleanup_(ctl_table_freep) CtlTable *t = NULL;
        _cleanup_free_ char *host = NULL, *port_s = NULL;
        _cleanup_free_ const char **columns = NULL;
        const char *name = q->name, *role = q->role, *member = q->member, *sql = q->sql;
        const char *delimiter = q->delimiter;
        CtlFormat format = q->format;
        const DcsMember *m = NULL;
        unsigned port;
        int r;

        r = ctl_get_cluster(c, name, &cluster);
        if (r < 0)
                return r;
        if (member && !dcs_cluster_find_member(cluster, member))
                return ctl_fail("Member %s does not exist in cluster %s", member, name);
        for (size_t i = 0; i < cluster->n_members && !m; i++)
                if (ctl_member_has_role(cluster, &cluster->members[i], role) &&
                    (!member || streq(cluster->members[i].name, member)))
                        m = &cluster->members[i];
        if (!m || ctl_conn_url_parse(m->conn_url, &host, &port, NULL) < 0) {
                _cleanup_free_ char *msg = NULL;
                if (member)
                        r = asprintf(&msg, "No connection to member %s is available", member);
                else
                        r = asprintf(&msg, "No connection to role=%s is available", role);
                if (r < 0)
                        return -ENOMEM;
                print_error_row(format, delimiter, msg);
                return -EIO;
        }
        if (asprintf(&port_s, "%u", port) < 0)
                return -ENOMEM;
        {
                const char *keys[] = {
                        "host",
                        "port",
                        "user",
                        "password",
                        "dbname",
                        "fallback_application_name",
                        "connect_timeout",
                        NULL};
                const char *values[ELEMENTSOF(keys)];
                size_t k = 0;
                values[k++] = host;
                values[k++] = port_s;
                values[k++] = q->user;
                values[k++] = q->password;
                values[k++] = q->dbname;
                values[k++] = "Patroni ctl";
                values[k++] = "5";
                values[k] = NULL;
                conn = PQconnectdbParams(keys, values, 0);
        }
        if (!conn || PQstatus(conn) != CONNECTION_OK) {
                _cleanup_free_ char *msg = NULL;
                const char *e = conn ? PQerrorMessage(conn) : "out of memory";
                if (asprintf(&msg, "ERROR, SQLSTATE: %s", e) < 0)
                        return -ENOMEM;
                for (char *p = msg; *p; p++)
                        if (*p == '\n')
                                *p = ' ';
                print_error_row(format, delimiter, msg);
                return -EIO;
        }
        if (!streq(role, "any") && !streq(role, "leader")) {
                _cleanup_(PQclearp) PGresult *rec = PQexec(conn, "SELECT pg_catalog.pg_is_in_recovery()");
                bool in_recovery = rec && PQresultStatus(rec) == PGRES_TUPLES_OK && PQntuples(rec) == 1 &&
                        streq(PQgetvalue(rec, 0, 0), "t");
                bool want_recovery =
                        streq(role, "replica") || streq(role, "standby") || streq(role, "standby-leader");
                if (in_recovery != want_recovery) {
                        _cleanup_free_ char *msg = NULL;
                        if (asprintf(&msg, "No connection to role=%s is available", role) < 0)
                                return -ENOMEM;
                        print_error_row(format, delimiter, msg);
                        return -EIO;
                }
        }
        res = PQexec(conn, sql);
        if (!res || (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK)) {
                _cleanup_free_ char *msg = NULL;
                const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
                if (asprintf(&msg, "ERROR, SQLSTATE: %s", state ?: PQerrorMessage(conn)) < 0)
                        return -ENOMEM;
                for (char *p = msg; *p; p++)
                        if (*p == '\n')
                                *p = ' ';
                print_error_row(format, delimiter, msg);
                {
                        const char *e = PQerrorMessage(conn);
                        fprintf(stderr, "Error: %.*s\n", (int)strcspn(e, "\n"), e);
                }
                return -EIO;
        }
        if (PQresultStatus(res) == PGRES_COMMAND_OK)
                return 0;
        columns = new0(const char *, (size_t)PQnfields(res));
        if (!columns)
                return -ENOMEM;
        for (int i = 0; i < PQnfields(res); i++)
                columns[i] = PQfname(res, i);
        r = ctl_table_new(columns, (size_t)PQnfields(res), &t);
        if (r < 0)
                return r;
        for (int row = 0; row < PQntuples(res); row++) {
                cJSON **items = new0(cJSON *, (size_t)PQnfields(res));
                if (!items)
                        return -ENOMEM;
                for (int col = 0; col < PQnfields(res); col++)
                        items[col] = cell_value(res, row, col);
                r = ctl_table_add_row(t, items);
                free(items);
                if (r < 0)
                        return r;
        }
        return ctl_table_print(t, format, NULL, delimiter, stdout);
}

int ctl_run_query(Ctl *c, const CtlArgs *a) {
        _cleanup_free_ char *sql = NULL, *password = NULL;
        const char *file = a->value[CTL_SLOT_FILE], *command = a->value[CTL_SLOT_COMMAND];
        Query q = {
                .role = a->value[CTL_SLOT_ROLE],
                .member = a->value[CTL_SLOT_MEMBER],
                .user = a->value[CTL_SLOT_USERNAME],
                .dbname = a->value[CTL_SLOT_DBNAME],
                .delimiter = a->value[CTL_SLOT_DELIMITER] ?: "\t",
                .format = a->value[CTL_SLOT_FORMAT] ? ctl_format_from_string(a->value[CTL_SLOT_FORMAT])
                                                    : CTL_FORMAT_TSV,
        };
        double watch = ctl_watch_interval(a);
        int r;

        if (q.member && q.role)
                return ctl_fail("--role and --member are mutually exclusive options");
        if (file && command)
                return ctl_fail("--file and --command are mutually exclusive options");
        if (!file && !command)
                return ctl_fail("You need to specify either --command or --file");
        if (q.member)
                q.role = "any";
        else if (!q.role)
                q.role = "leader";
        q.name = ctl_scope(c, a->positional[0]);
        if (!q.name)
                return ctl_fail("No cluster name: give it as an argument or set scope in the configuration");
        if (file) {
                r = read_full_file(file, 16 * 1024 * 1024, &sql, NULL);
                if (r < 0)
                        return ctl_fail("Cannot read %s: %s", file, strerror(-r));
        } else if (!(sql = strdup(command)))
                return -ENOMEM;
        q.sql = sql;
        if (ctl_args_has(a, CTL_SLOT_PASSWORD)) {
                password = read_password();
                if (!password)
                        return ctl_fail("No password given");
                q.password = password;
        }

        /* -W/-w as patronictl: the query again every interval (reading the cluster and connecting anew,
         * so role=leader follows a failover), without clearing the screen, until interrupted. */
        if (watch > 0)
                ctl_catch_interrupt();
        for (;;) {
                r = query_once(c, &q);
                fflush(stdout);
                if ((r < 0 && r != -EIO) || watch <= 0 || ctl_interrupted())
                        return r;
                ctl_sleep((usec_t)(watch * USEC_PER_SEC));
                if (ctl_interrupted())
                        return r;
        }
}
