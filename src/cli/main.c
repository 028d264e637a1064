#include <stdio.h>
int main(void) { puts("cassette"); return 0; }
