/*
 * main.c - the smallest program against an installed libidprime, built
 * with nothing but `cc $(pkg-config --cflags --libs idprime)`: it opens the
 * in-process store, takes three IDs from a counter and prints them.
 */
#include <stdio.h>

#include <idprime/idprime.h>

int main(void)
{
    idp_error err;
    idp_client *c = idp_open("mem://", NULL, &err);
    if (c == NULL) {
        fprintf(stderr, "example: %s\n", err.msg);
        return 1;
    }
    idp_counter *ctr = idp_counter_get(c, "example", &err);
    if (ctr == NULL) {
        fprintf(stderr, "example: %s\n", err.msg);
        idp_close(c);
        return 1;
    }
    for (int i = 0; i < 3; i++) {
        uint64_t id;
        if (idp_next(ctr, &id, &err) != IDP_OK) {
            fprintf(stderr, "example: %s\n", err.msg);
            idp_close(c);
            return 1;
        }
        printf("%llu\n", (unsigned long long)id);
    }
    idp_close(c);
    return 0;
}
