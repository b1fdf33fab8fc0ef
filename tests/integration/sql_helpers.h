/*
 * sql_helpers.h - faults on every process of a server, which the
 * PostgreSQL and MariaDB suites (test_postgresql, test_mysql,
 * test_faults_sql) and test_fork share; see sql_helpers.c.
 */
#ifndef IDPRIME_SQL_HELPERS_H
#define IDPRIME_SQL_HELPERS_H

#include <stdint.h>

#include "harness.h"
#include "idprime/idprime.h"
#include "log_helpers.h"

/* The counter's prime_calls (fetches from the store) so far. */
uint64_t prime_calls(idp_counter *ctr);

/* Hangs every process of the server (SIGSTOP), the parent first, and
 * waits until all are stopped; fails the test if one does not stop. */
void hang_all(const server *s);

/* SIGCONT to every process of the server. */
void resume_all(const server *s);

/* A crash of the server's machine: every process SIGKILLed, and gone
 * before it returns (or the test fails). The directory stays for
 * server_restart. */
void crash_all(server *s);

#endif
