from das.cli import main

main()
