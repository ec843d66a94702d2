/* placeholder: replaced by the CLI */
#include <altgrad.h>
#include <stdio.h>
int main(void) { printf("altgrad %s\n", ag_version()); return 0; }
