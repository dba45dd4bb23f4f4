/* A C host built against an installed lic4es with nothing but pkg-config:
 *   cc installed_app.c $(pkg-config --cflags --libs lic4es)
 * argv[1]: a file holding the config JSON. Prints the version and the tier, exits 0 when
 * the engine started and shut down. */
#include <stdio.h>
#include <stdlib.h>

#include "lic4es.h"

static const char *const TIERS[] = {"community", "pro", "team", "enterprise"};

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s CONFIG.json\n", argv[0]);
    return 2;
  }
  FILE *f = fopen(argv[1], "rb");
  if (f == NULL) {
    perror(argv[1]);
    return 2;
  }
  static char config[65536];
  size_t n = fread(config, 1, sizeof config - 1, f);
  fclose(f);
  config[n] = '\0';

  lic_result r = lic_init(config);
  if (r != LIC_OK) {
    char msg[512];
    lic_last_error(msg, sizeof msg, NULL);
    fprintf(stderr, "lic_init: %d %s\n", (int)r, msg);
    return 1;
  }
  lic_tier tier = lic_current_tier();
  printf("version %s tier %s\n", lic_version(), (unsigned)tier < 4 ? TIERS[tier] : "?");
  return lic_shutdown() == LIC_OK ? 0 : 1;
}
